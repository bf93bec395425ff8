// `dmctl loop attach|detach|ls`: loop devices without losetup. `loop ls`
// prints the columns of util-linux 2.38's `losetup -l`, read from sysfs.

import fs from 'node:fs';

import { attachedLoopNumbers, attachLoop, detachLoop } from '../index.js';
import { CommandFailure, hasSwitch, optionValue, type Command, type CommandContext } from './command.js';

/** One attached loop device, as `losetup -l` shows it. */
export interface LoopRow {
  name: string;
  sizeLimit: string;
  offset: string;
  autoclear: string;
  readOnly: string;
  backingFile: string;
  directIo: string;
  logicalSectorSize: string;
}

const COLUMNS: readonly { heading: string; key: keyof LoopRow; right: boolean }[] = [
  { heading: 'NAME', key: 'name', right: false },
  { heading: 'SIZELIMIT', key: 'sizeLimit', right: true },
  { heading: 'OFFSET', key: 'offset', right: true },
  { heading: 'AUTOCLEAR', key: 'autoclear', right: true },
  { heading: 'RO', key: 'readOnly', right: true },
  { heading: 'BACK-FILE', key: 'backingFile', right: false },
  { heading: 'DIO', key: 'directIo', right: true },
  { heading: 'LOG-SEC', key: 'logicalSectorSize', right: true },
];

/** Formats rows as `losetup -l` does: numbers right-aligned, names left-aligned, one space apart. */
export function formatLoopList(rows: readonly LoopRow[]): string {
  const widths = COLUMNS.map((column) => Math.max(column.heading.length, ...rows.map((row) => row[column.key].length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, index) => (COLUMNS[index].right ? cell.padStart(widths[index]) : cell.padEnd(widths[index])))
      .join(' ')
      .trimEnd();
  const lines = [line(COLUMNS.map((column) => column.heading))];
  for (const row of rows) lines.push(line(COLUMNS.map((column) => row[column.key])));
  return `${lines.join('\n')}\n`;
}

function readSysfs(path: string, fallback: string): string {
  try {
    return fs.readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/** The `losetup -l` row of loop device `number`, from /sys/block/loopN. */
export function loopRow(number: number, sysBlock = '/sys/block'): LoopRow {
  const base = `${sysBlock}/loop${number}`;
  return {
    name: `/dev/loop${number}`,
    sizeLimit: readSysfs(`${base}/loop/sizelimit`, '0'),
    offset: readSysfs(`${base}/loop/offset`, '0'),
    autoclear: readSysfs(`${base}/loop/autoclear`, '0'),
    readOnly: readSysfs(`${base}/ro`, '0'),
    backingFile: readSysfs(`${base}/loop/backing_file`, ''),
    directIo: readSysfs(`${base}/loop/dio`, '0'),
    logicalSectorSize: readSysfs(`${base}/queue/logical_block_size`, '512'),
  };
}

/** Parses a byte count for --offset or --sizelimit. */
function byteCount(text: string | undefined, option: string): bigint | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new CommandFailure(`Invalid --${option} ${JSON.stringify(text)}: give a whole number of bytes`, false);
  return BigInt(text);
}

const LOOP_USAGE = 'attach <file> [-r] [--offset <bytes>] [--sizelimit <bytes>] | detach <loop_device> | ls';

function runLoop(context: CommandContext): void {
  const [action, target, ...rest] = context.args;
  const usage = (): never => {
    throw new CommandFailure(`Usage: dmctl loop ${LOOP_USAGE}`, false);
  };
  switch (action) {
    case 'attach': {
      if (target === undefined || rest.length > 0) usage();
      // Without autoclear, so the device outlives this process as losetup's does.
      const loop = attachLoop(target, {
        readOnly: hasSwitch(context.parsed, 'readonly'),
        autoclear: false,
        offset: byteCount(optionValue(context.parsed, 'offset'), 'offset'),
        sizeLimit: byteCount(optionValue(context.parsed, 'sizelimit'), 'sizelimit'),
      });
      loop.close();
      context.out.write(`${loop.path}\n`);
      return;
    }
    case 'detach':
      if (target === undefined || rest.length > 0) usage();
      detachLoop(target);
      return;
    case 'ls': {
      if (target !== undefined) usage();
      const rows = attachedLoopNumbers().map((number) => loopRow(number));
      if (rows.length > 0) context.out.write(formatLoopList(rows));
      return;
    }
    default:
      usage();
  }
}

export const loopCommands: readonly Command[] = [
  {
    name: 'loop',
    usage: LOOP_USAGE,
    summary: 'attach, detach and list loop devices',
    details:
      'attach FILE prints the loop device it attached FILE to. -r|--readonly attaches read-only;\n' +
      '--offset BYTES starts that many bytes into FILE; --sizelimit BYTES exposes at most that many bytes.\n' +
      'The device stays attached after dmctl exits (no autoclear), as with losetup.\n' +
      'detach DEVICE detaches /dev/loopN. ls prints what `losetup -l` prints.',
    minArgs: 1,
    maxArgs: 3,
    run: runLoop,
  },
];
