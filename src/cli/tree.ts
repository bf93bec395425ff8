// `ls --tree`: the dependency tree of all mapped devices, built and drawn
// the way libdm's dm_tree does it. Devices come in the kernel's list order;
// a device used by another hangs under it (and under each of its users),
// devices with no users start a line, block devices that are not mapped
// devices (loop, disks) appear as leaves without a name.

import type { DevNumber } from '../index.js';

/** One mapped device as the tree needs it. */
export interface TreeDevice {
  name: string;
  uuid: string;
  dev: DevNumber;
  suspended: boolean;
  readOnly: boolean;
  openCount: number;
  deps: DevNumber[];
}

/** What `-o` chose for the tree; the defaults are `device` and truncation at the terminal width. */
export interface TreeOptions {
  device: boolean;
  blockDeviceName: boolean;
  active: boolean;
  readWrite: boolean;
  openCount: boolean;
  uuid: boolean;
  compact: boolean;
  truncate: boolean;
  inverted: boolean;
  symbols: TreeSymbols;
  /** Output width before truncation: the terminal's columns minus 3, or 80. */
  width: number;
  /** The kernel's name of a block device (`loop0`), for `blkdevname`. */
  blockName: (dev: DevNumber) => string | undefined;
}

/** The drawing strings: two columns for a branch, three for compact joins. */
export interface TreeSymbols {
  empty: string;
  branch: string;
  vertical: string;
  last: string;
  single: string;
  first: string;
}

export const ASCII_SYMBOLS: TreeSymbols = { empty: '  ', branch: '|-', vertical: '| ', last: '`-', single: '---', first: '-+-' };
export const UTF8_SYMBOLS: TreeSymbols = {
  empty: '  ',
  branch: '\u251c\u2500',
  vertical: '\u2502 ',
  last: '\u2514\u2500',
  single: '\u2500\u2500\u2500',
  first: '\u2500\u252c\u2500',
};
const VT100_BEGIN = '\x1b(0\x0f';
const VT100_END = '\x1b(B';
export const VT100_SYMBOLS: TreeSymbols = {
  empty: '  ',
  branch: `${VT100_BEGIN}tq${VT100_END}`,
  vertical: `${VT100_BEGIN}x${VT100_END} `,
  last: `${VT100_BEGIN}mq${VT100_END}`,
  single: `${VT100_BEGIN}qqq${VT100_END}`,
  first: `${VT100_BEGIN}qwq${VT100_END}`,
};

/** An unknown word in the tree's `-o` list; the message is dmsetup's. */
export class TreeOptionError extends Error {}

/**
 * Parses the `-o` value of `ls --tree`. Like dmsetup, each word may be
 * shortened to a prefix, and the first matching name in dmsetup's order wins.
 */
export function parseTreeOptions(
  text: string | undefined,
  defaults: { utf8: boolean; width: number; blockName: TreeOptions['blockName'] },
): TreeOptions {
  const options: TreeOptions = {
    device: true,
    blockDeviceName: false,
    active: false,
    readWrite: false,
    openCount: false,
    uuid: false,
    compact: false,
    truncate: true,
    inverted: false,
    symbols: defaults.utf8 ? UTF8_SYMBOLS : ASCII_SYMBOLS,
    width: defaults.width,
    blockName: defaults.blockName,
  };
  const setters: [string, () => void][] = [
    ['device', () => (options.device = true)],
    ['blkdevname', () => (options.blockDeviceName = true)],
    ['nodevice', () => (options.device = false)],
    ['status', () => undefined],
    ['table', () => undefined],
    ['active', () => (options.active = true)],
    ['open', () => (options.openCount = true)],
    ['uuid', () => (options.uuid = true)],
    ['rw', () => (options.readWrite = true)],
    ['utf', () => (options.symbols = UTF8_SYMBOLS)],
    ['vt100', () => (options.symbols = VT100_SYMBOLS)],
    ['ascii', () => (options.symbols = ASCII_SYMBOLS)],
    ['inverted', () => (options.inverted = true)],
    ['compact', () => (options.compact = true)],
    ['notrunc', () => (options.truncate = false)],
  ];
  let rest = text ?? '';
  while (rest.length > 0) {
    const comma = rest.indexOf(',');
    const word = comma < 0 ? rest : rest.slice(0, comma);
    const setter = setters.find(([name]) => name.startsWith(word));
    if (!setter) throw new TreeOptionError(`Tree options not recognised: ${rest}.`);
    setter[1]();
    if (comma < 0) break;
    rest = rest.slice(comma + 1);
  }
  return options;
}

interface TreeNode {
  key: string;
  name: string;
  device?: TreeDevice;
  dev: DevNumber;
  uses: TreeNode[];
  usedBy: TreeNode[];
}

/** The tree of `devices` as dm_tree links it: `root.uses` holds the top level, `root.usedBy` the bottom level. */
function buildTree(devices: readonly TreeDevice[]): TreeNode {
  const root: TreeNode = { key: '0:0', name: '', dev: { major: 0, minor: 0 }, uses: [], usedBy: [] };
  const byKey = new Map<string, TreeNode>();
  const byDev = new Map(devices.map((device) => [`${device.dev.major}:${device.dev.minor}`, device]));
  const unlink = (parent: TreeNode, child: TreeNode): void => {
    parent.uses = parent.uses.filter((node) => node !== child);
    child.usedBy = child.usedBy.filter((node) => node !== parent);
  };
  const link = (parent: TreeNode, child: TreeNode): void => {
    if (parent === root) {
      if (child.usedBy.length > 0) return;
    } else {
      unlink(root, child);
    }
    if (child === root) {
      if (parent.uses.length > 0) return;
    } else {
      unlink(parent, root);
    }
    parent.uses.push(child);
    child.usedBy.push(parent);
  };
  const add = (parent: TreeNode, dev: DevNumber): void => {
    const key = `${dev.major}:${dev.minor}`;
    let node = byKey.get(key);
    const isNew = node === undefined;
    if (!node) {
      const device = byDev.get(key);
      node = { key, name: device?.name ?? '', device, dev, uses: [], usedBy: [] };
      byKey.set(key, node);
    }
    link(parent, node);
    if (!isNew) return;
    if (!node.device || node.device.deps.length === 0) {
      link(node, root);
      return;
    }
    for (const dep of node.device.deps) add(node, dep);
  };
  for (const device of devices) add(root, device.dev);
  return root;
}

function childCount(root: TreeNode, node: TreeNode, inverted: boolean): number {
  if (inverted) return root.uses.includes(node) ? 0 : node.usedBy.length;
  return node.uses.includes(root) ? 0 : node.uses.length;
}

/** Writes characters with dmsetup's truncation: past the width a line ends in "...". */
class TreeWriter {
  readonly #bytes: number[] = [];
  #x = 1;
  #held: number | undefined;

  constructor(private readonly options: TreeOptions) {}

  /** The column the next character goes to, from 1. */
  get column(): number {
    return this.#x;
  }

  write(text: string): void {
    for (const byte of Buffer.from(text, 'utf8')) this.#writeByte(byte);
  }

  // Counts UTF-8 lead bytes as columns. At the column after the width, a
  // plain ASCII character is held back: it is printed only if the line ends
  // right there, otherwise "..." replaces the rest of the line.
  #writeByte(byte: number): void {
    const startsCharacter = (byte & 0xc0) !== 0x80;
    if (startsCharacter) this.#x++;
    if (!this.options.truncate) {
      this.#bytes.push(byte);
      return;
    }
    if (this.#x <= this.options.width) this.#bytes.push(byte);
    if (this.#x === this.options.width + 1 && startsCharacter) {
      if (this.#held !== undefined || byte & 0x80) {
        this.#bytes.push(0x2e, 0x2e, 0x2e);
      } else {
        this.#held = byte;
        this.#x--;
      }
    }
  }

  newline(): void {
    if (this.#held !== undefined && this.#x === this.options.width) this.#bytes.push(this.#held);
    this.#held = undefined;
    this.#bytes.push(0x0a);
    this.#x = 1;
  }

  output(): Buffer {
    return Buffer.from(this.#bytes);
  }
}

/** Draws the tree of `devices` as `dmsetup ls --tree` prints it. */
export function formatTree(devices: readonly TreeDevice[], options: TreeOptions): Buffer {
  const root = buildTree(devices);
  const out = new TreeWriter(options);
  const widths: number[] = [];
  const more: boolean[] = [];
  const printAttributes = options.active || options.readWrite || options.openCount || options.uuid;
  const compact = options.compact && !printAttributes;
  const s = options.symbols;

  const prefix = (depth: number): void => {
    for (let d = 0; d < depth; d++) {
      out.write(' '.repeat(widths[d] + 1));
      if (d === depth - 1) out.write(more[depth] ? s.branch : s.last);
      else out.write(more[d + 1] ? s.vertical : s.empty);
    }
  };

  const drawNode = (node: TreeNode, depth: number, lastChild: boolean, hasChildren: boolean): void => {
    if (!node.name && !options.device && !options.blockDeviceName) return;
    more[depth] = !lastChild;
    widths[depth] = 0;
    const firstOnLine = out.column === 1;
    if (!compact || firstOnLine) prefix(depth);
    const offset = out.column;
    if (compact && !firstOnLine) out.write(more[depth] ? s.first : s.single);
    out.write(node.name);
    if (options.blockDeviceName) {
      const kernelName = options.blockName(node.dev);
      if (kernelName !== undefined) out.write(` <${kernelName}>`);
    }
    if (options.device) out.write(` (${node.dev.major}:${node.dev.minor})`);
    if (printAttributes && node.device) {
      const attributes: string[] = [];
      if (options.active) attributes.push(node.device.suspended ? 'SUSPENDED' : 'ACTIVE');
      if (options.readWrite) attributes.push(node.device.readOnly ? 'RO' : 'RW');
      if (options.openCount) attributes.push(String(node.device.openCount));
      if (options.uuid) attributes.push(node.device.uuid);
      out.write(` [${attributes.join(', ')}]`);
    }
    if (compact) widths[depth] = out.column - offset;
    if (!compact || !hasChildren) out.newline();
  };

  const walk = (parent: TreeNode, depth: number): void => {
    const children = options.inverted ? parent.usedBy : parent.uses;
    children.forEach((child, index) => {
      const hasChildren = childCount(root, child, options.inverted) > 0;
      drawNode(child, depth, index === children.length - 1, hasChildren);
      if (hasChildren) walk(child, depth + 1);
    });
  };
  walk(root, 0);
  return out.output();
}
