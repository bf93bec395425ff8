// Commands that only read: version, targets, ls, info, table, status, deps,
// mangle and splitname, printed byte for byte as dmsetup 1.02.185 prints them.

import fs from 'node:fs';
import { createRequire } from 'node:module';

import { mangleName } from '../dm/mangle.js';
import { decodeDev, type DeviceInfo, type DeviceMapper, type DevNumber, type TargetReply } from '../index.js';
import { CommandFailure, hasSwitch, optionValue, type Command, type CommandContext } from './command.js';
import { blockDeviceName, labelFor, mappedDeviceName, readAheadSectors, selectDevice, selectsByOption } from './device.js';
import { asCommand, toFailure } from './errors.js';
import {
  DEFAULT_INFO_FIELDS,
  DEFAULT_SPLITNAME_FIELDS,
  fieldHelp,
  FieldHelpRequested,
  formatReport,
  MissingFieldDataError,
  reportLayout,
  selectFields,
  splitName,
  UnknownFieldError,
  type ReportRow,
} from './report.js';
import { formatTree, parseTreeOptions, TreeOptionError, type TreeDevice } from './tree.js';

/** The naming `-o` picks for devices in `ls` and `deps`. */
type DeviceNaming = 'devno' | 'devname' | 'blkdevname';

/** Parses the `-o` of `ls` and `deps` as dmsetup does: prefixes allowed, the last word wins. */
export function parseDeviceNaming(text: string | undefined): DeviceNaming {
  let naming: DeviceNaming = 'devno';
  let rest = text ?? '';
  while (rest.length > 0) {
    const comma = rest.indexOf(',');
    const word = comma < 0 ? rest : rest.slice(0, comma);
    const found = (['devno', 'blkdevname', 'devname'] as const).find((name) => name.startsWith(word));
    if (!found) throw new CommandFailure(`Option not recognised: ${rest}.\nCouldn't process command line.`, false);
    naming = found;
    if (comma < 0) break;
    rest = rest.slice(comma + 1);
  }
  return naming;
}

function nameByNaming(naming: DeviceNaming, dev: DevNumber): string | undefined {
  if (naming === 'blkdevname') return blockDeviceName(dev.major, dev.minor);
  if (naming === 'devname') return mappedDeviceName(dev.major, dev.minor);
  return undefined;
}

function packageVersion(): string {
  const require = createRequire(import.meta.url);
  return (require('../../../package.json') as { version: string }).version;
}

/** Names of all devices in the kernel's order, or undefined after printing "No devices found". */
function allDevices(context: CommandContext, quiet = false): string[] | undefined {
  const names = context.dm().listDevices().map((entry) => entry.name);
  if (names.length === 0) {
    if (!quiet) context.out.write('No devices found\n');
    return undefined;
  }
  return names;
}

/** Runs `each` for every device when no device was named; true when it did. */
function forAllDevices(context: CommandContext, each: (name: string, multiple: boolean) => void): boolean {
  if (context.args.length > 0 || selectsByOption(context)) return false;
  const names = allDevices(context) ?? [];
  let failure: unknown;
  for (const name of names) {
    try {
      each(name, true);
    } catch (error) {
      failure ??= error;
    }
  }
  if (failure !== undefined) throw failure;
  return true;
}

/** Tells whether lines get a NAME: prefix: dmsetup adds it when several devices were named. */
function isMultiple(context: CommandContext): boolean {
  return context.args.length > 1;
}

const version: Command = {
  name: 'version',
  usage: '',
  summary: 'print the library and kernel driver versions',
  minArgs: 0,
  maxArgs: 0,
  run(context) {
    context.out.write(`Library version:   dm-ioctl ${packageVersion()}\n`);
    const driver = context.dm().version().join('.');
    context.out.write(`Driver version:    ${driver}\n`);
  },
};

const targets: Command = {
  name: 'targets',
  usage: '',
  summary: 'list the target types the kernel has loaded, with versions',
  minArgs: 0,
  maxArgs: 0,
  run(context) {
    for (const target of context.dm().listVersions()) {
      context.out.write(`${target.name.padEnd(16)} v${target.version.join('.')}\n`);
    }
  },
};

function treeDevices(dm: DeviceMapper): TreeDevice[] {
  return dm.listDevices().flatMap((entry) => {
    const info = dm.info(entry.name);
    if (!info.exists) return [];
    return [{ ...info, dev: decodeDev(entry.dev), deps: dm.deps(entry.name) }];
  });
}

function localeIsUtf8(): boolean {
  const locale = process.env.LC_ALL || process.env.LC_CTYPE || process.env.LANG || '';
  return /utf-?8/i.test(locale);
}

const ls: Command = {
  name: 'ls',
  usage: '[--target <target_type>] [-o <options>] [--tree]',
  summary: 'list devices as NAME<TAB>(MAJOR:MINOR)',
  details:
    '--target TYPE lists only devices with a target of TYPE, as NAME<TAB>(MAJOR, MINOR).\n' +
    '-o devno|devname|blkdevname names each device by number (default), dm name or kernel name (dm-0).\n' +
    '--tree draws the devices with the devices they use below them; its -o takes\n' +
    'ascii, utf, vt100, compact, inverted, notrunc, blkdevname, [no]device, active, open, rw and uuid.',
  minArgs: 0,
  maxArgs: 0,
  async run(context) {
    const target = optionValue(context.parsed, 'target');
    if (target !== undefined) {
      const dm = context.dm();
      for (const entry of dm.listDevices()) {
        const found = dm.table(entry.name).some((line) => line.type === target);
        if (!found) continue;
        const dev = decodeDev(entry.dev);
        context.out.write(`${entry.name}\t(${dev.major}, ${dev.minor})\n`);
      }
      return;
    }
    if (hasSwitch(context.parsed, 'tree')) {
      let options;
      try {
        const width = process.stdout.isTTY && process.stdout.columns > 3 ? process.stdout.columns - 3 : 80;
        options = parseTreeOptions(optionValue(context.parsed, 'options'), {
          utf8: localeIsUtf8(),
          width,
          blockName: (dev) => blockDeviceName(dev.major, dev.minor),
        });
      } catch (error) {
        if (error instanceof TreeOptionError) throw new CommandFailure(`${error.message}\nCouldn't process command line.`, false);
        throw error;
      }
      const drawn = formatTree(treeDevices(context.dm()), options);
      context.out.write(drawn.toString('utf8'));
      return;
    }
    const naming = parseDeviceNaming(optionValue(context.parsed, 'options'));
    const entries = context.dm().listDevices();
    if (entries.length === 0) {
      context.out.write('No devices found\n');
      return;
    }
    for (const entry of entries) {
      const dev = decodeDev(entry.dev);
      const named = nameByNaming(naming, dev);
      context.out.write(named !== undefined ? `${entry.name}\t(${named})\n` : `${entry.name}\t(${dev.major}:${dev.minor})\n`);
    }
  },
};

/** Prints the "/dev/mapper/NAME: open failed" line dmsetup prints when it cannot read the read-ahead. */
function readAheadLine(context: CommandContext, info: DeviceInfo): string {
  const node = `/dev/mapper/${mangleName(info.name)}`;
  if (!fs.existsSync(node)) {
    context.err.write(`${node}: open failed: No such file or directory\n`);
    return '';
  }
  return `Read Ahead:        ${readAheadSectors(info.major, info.minor)}\n`;
}

/** Formats a device the way `dmsetup info` does without -c. */
export function formatInfo(info: DeviceInfo, readAhead: string): string {
  const state = `${info.suspended ? 'SUSPENDED' : 'ACTIVE'}${info.readOnly ? ' (READ-ONLY)' : ''}${info.deferredRemove ? ' (DEFERRED REMOVE)' : ''}`;
  let tables = 'None';
  if (info.liveTable || info.inactiveTable) {
    tables = `${info.liveTable ? 'LIVE' : ''}${info.liveTable && info.inactiveTable ? ' & ' : ''}${info.inactiveTable ? 'INACTIVE' : ''}`;
  }
  let text = `Name:              ${info.name}\nState:             ${state}\n${readAhead}`;
  text += `Tables present:    ${tables}\nOpen count:        ${info.openCount}\nEvent number:      ${info.eventNr}\n`;
  text += `Major, minor:      ${info.major}, ${info.minor}\nNumber of targets: ${info.targetCount}\n`;
  if (info.uuid) text += `UUID: ${info.uuid}\n`;
  return `${text}\n`;
}

function reportRow(dm: DeviceMapper, info: DeviceInfo): ReportRow {
  let deps: DevNumber[] | undefined;
  let devices: { name: string; dev: DevNumber; deps: DevNumber[] }[] | undefined;
  const getDeps = (): DevNumber[] => (deps ??= dm.deps(info.name));
  const getDevices = (): { name: string; dev: DevNumber; deps: DevNumber[] }[] =>
    (devices ??= dm.listDevices().map((entry) => ({ name: entry.name, dev: decodeDev(entry.dev), deps: dm.deps(entry.name) })));
  const same = (a: DevNumber, b: DevNumber): boolean => a.major === b.major && a.minor === b.minor;
  const self = { major: info.major, minor: info.minor };
  return {
    info,
    readAhead: readAheadSectors(info.major, info.minor),
    blockDeviceName: () => {
      const kernelName = blockDeviceName(info.major, info.minor);
      if (kernelName !== undefined) return kernelName;
      throw new CommandFailure(
        `Could not resolve block device name for ${info.major}:${info.minor}.\n_do_report_object: report function failed for field blkdevname`,
      );
    },
    deps: getDeps,
    depBlockNames: () => getDeps().map((dev) => blockDeviceName(dev.major, dev.minor) ?? `${dev.major}:${dev.minor}`),
    usedNames: () => getDeps().flatMap((dev) => getDevices().filter((device) => same(device.dev, dev)).map((device) => device.name)),
    users: () => getDevices().filter((device) => device.deps.some((dev) => same(dev, self))),
    split: splitName(info.uuid, info.name, '-'),
  };
}

function reportOptions(context: CommandContext) {
  return reportLayout({
    noHeadings: hasSwitch(context.parsed, 'noheadings'),
    separator: optionValue(context.parsed, 'separator'),
    namePrefixes: hasSwitch(context.parsed, 'nameprefixes'),
  });
}

/** Resolves `-o` for a report, printing the field list for `help` and failing on an unknown field. */
function reportFields(context: CommandContext, defaults: string) {
  try {
    return selectFields(optionValue(context.parsed, 'options'), defaults);
  } catch (error) {
    if (error instanceof FieldHelpRequested) {
      context.err.write(fieldHelp());
      return undefined;
    }
    if (error instanceof UnknownFieldError) {
      context.err.write(fieldHelp());
      throw new CommandFailure(error.message, false);
    }
    throw error;
  }
}

const info: Command = {
  name: 'info',
  usage: '[<device>...]',
  summary: 'show devices, as a block of lines or with -c as columns',
  details:
    '-c|-C|--columns prints one row per device; -o FIELDS picks the columns (-o help lists them,\n' +
    '-o +FIELDS adds to the default name,major,minor,attr,open,segments,events,uuid).\n' +
    '--noheadings drops the heading row and separates fields with ":"; --separator TEXT sets the separator.',
  minArgs: 0,
  maxArgs: -1,
  async run(context) {
    const columns = hasSwitch(context.parsed, 'columns');
    const fields = columns ? reportFields(context, DEFAULT_INFO_FIELDS) : undefined;
    if (columns && fields === undefined) return;
    const dm = context.dm();
    const rows: ReportRow[] = [];
    const show = (name: string | undefined): void => {
      const device = selectDevice(context, name, 'info');
      const found = dm.info(device.id);
      if (!found.exists) throw new CommandFailure('Device does not exist.');
      if (columns) {
        // Evaluate the row now: like libdm, a field that fails ends the command after the rows before it.
        const added = reportRow(dm, found);
        fields?.forEach((field) => field.value(added));
        rows.push(added);
      }
      else context.out.write(formatInfo(found, readAheadLine(context, found)));
    };
    try {
      if (!forAllDevices(context, (name) => show(name))) {
        if (context.args.length === 0) show(undefined);
        for (const name of context.args) show(name);
      }
    } finally {
      if (fields) writeReport(context, fields, rows);
    }
  },
};

function writeReport(context: CommandContext, fields: ReturnType<typeof selectFields>, rows: ReportRow[]): void {
  try {
    context.out.write(formatReport(fields, rows, reportOptions(context)));
  } catch (error) {
    if (error instanceof MissingFieldDataError) throw new CommandFailure(error.message);
    throw error;
  }
}

/** Hides the key of crypt table lines (the second word) as zeros, as dmsetup does without --showkeys. */
export function hideCryptKey(params: string): string {
  const words = params.split(' ');
  if (words.length < 2) return params;
  words[1] = '0'.repeat(words[1].length);
  return words.join(' ');
}

function printTargets(context: CommandContext, kind: 'table' | 'status', name: string | undefined, multiple: boolean): void {
  const dm = context.dm();
  const device = selectDevice(context, name, kind);
  const inactive = hasSwitch(context.parsed, 'inactive');
  const noflush = hasSwitch(context.parsed, 'noflush');
  let lines: TargetReply[];
  try {
    lines = kind === 'table' ? dm.table(device.id, { inactive }) : dm.status(device.id, { inactive, noflush });
  } catch (error) {
    // libdm reports a missing device quietly for status; table shows the ioctl error.
    if (kind === 'status' && error instanceof Error && (error as { code?: string }).code === 'ENXIO') {
      throw new CommandFailure('Device does not exist.');
    }
    throw error;
  }
  const target = optionValue(context.parsed, 'target');
  const prefix = multiple ? `${typeof device.id === 'string' ? device.id : device.label.name}: ` : '';
  if (lines.length === 0 && target === undefined) {
    context.out.write(`${prefix}\n`);
    return;
  }
  const showKeys = hasSwitch(context.parsed, 'showkeys');
  for (const line of lines) {
    if (target !== undefined && line.type !== target) continue;
    const params = kind === 'table' && line.type === 'crypt' && !showKeys ? hideCryptKey(line.params) : line.params;
    context.out.write(`${prefix}${line.start} ${line.length} ${line.type} ${params}\n`);
  }
}

function targetCommand(kind: 'table' | 'status'): Command {
  return {
    name: kind,
    usage: kind === 'table' ? '[<device>...] [--target <target_type>] [--showkeys]' : '[<device>...] [--noflush] [--target <target_type>]',
    summary: kind === 'table' ? 'print the live table (--inactive: the loaded one)' : "print each target's status line",
    details:
      kind === 'table'
        ? '--target TYPE prints only lines of that target type. Crypt keys print as zeros unless --showkeys.\n--inactive prints the table loaded but not yet resumed.'
        : '--target TYPE prints only lines of that target type. --noflush does not flush before reading\n(thin-pool usage) and --inactive reports the loaded table.',
    minArgs: 0,
    maxArgs: -1,
    async run(context) {
      if (forAllDevices(context, (name) => asCommandSync(context, kind, name, () => printTargets(context, kind, name, true)))) return;
      const names = context.args.length === 0 ? [undefined] : context.args;
      for (const name of names) asCommandSync(context, kind, name, () => printTargets(context, kind, name, isMultiple(context)));
    },
  };
}

/** Runs a synchronous library call, turning a failed ioctl into libdm's error line for `operation`. */
function asCommandSync(context: CommandContext, operation: string, name: string | undefined, action: () => void): void {
  try {
    action();
  } catch (error) {
    throw toFailure(error, operation, labelFor(context, name));
  }
}

const deps: Command = {
  name: 'deps',
  usage: '[-o <options>] [<device>...]',
  summary: 'list the devices each table uses',
  details: '-o devno (default) prints (MAJOR, MINOR); -o devname the dm name; -o blkdevname the kernel name.',
  minArgs: 0,
  maxArgs: -1,
  run(context) {
    const naming = parseDeviceNaming(optionValue(context.parsed, 'options'));
    const printDeps = (name: string | undefined, multiple: boolean): void => {
      const device = selectDevice(context, name, 'deps');
      const used = context.dm().deps(device.id, { inactive: hasSwitch(context.parsed, 'inactive') });
      const words = used.map((dev) => {
        const named = nameByNaming(naming, dev);
        return named !== undefined ? ` (${named})` : ` (${dev.major}, ${dev.minor})`;
      });
      const prefix = multiple ? `${name}: ` : '';
      context.out.write(`${prefix}${used.length} dependencies\t:${words.join('')}\n`);
    };
    if (forAllDevices(context, (name) => asCommandSync(context, 'deps', name, () => printDeps(name, true)))) return;
    const names = context.args.length === 0 ? [undefined] : context.args;
    for (const name of names) asCommandSync(context, 'deps', name, () => printDeps(name, isMultiple(context)));
  },
};

const mangle: Command = {
  name: 'mangle',
  usage: '[<device>...]',
  summary: 'rename devices whose names are not in the mangled form',
  details: '--manglename auto|hex|none picks the form (default auto). A uuid in the wrong form cannot be changed.',
  minArgs: 0,
  maxArgs: -1,
  async run(context) {
    const dm = context.dm();
    const mode = (optionValue(context.parsed, 'manglename') ?? 'auto').toLowerCase() as 'auto' | 'hex' | 'none';
    const fix = async (name: string): Promise<void> => {
      const found = dm.info(name);
      if (!found.exists) throw new CommandFailure('Device does not exist.');
      const current = mangleName(found.name, 'auto');
      const wanted = mode === 'none' ? found.name : mangleName(found.name, mode);
      if (current === wanted) {
        const uuidText = found.uuid ? found.uuid : '[no UUID]';
        context.out.write(`${current}: ${uuidText}: name ${found.uuid ? 'and UUID ' : ''}already in correct form\n`);
        return;
      }
      context.out.write(`${current}: renaming to ${wanted}\n`);
      await asCommand('rename', { name: current }, () => dm.rename(name, wanted));
    };
    const names = context.args.length > 0 ? context.args : (allDevices(context) ?? []);
    for (const name of names) await fix(name);
  },
};

const splitname: Command = {
  name: 'splitname',
  usage: '<device> [<subsystem>]',
  summary: 'split an LVM device name into volume group, logical volume and layer',
  details: 'SUBSYSTEM defaults to LVM; names of other subsystems have no parts. -o, --noheadings and --separator as for info -c.',
  minArgs: 1,
  maxArgs: 2,
  run(context) {
    const fields = reportFields(context, DEFAULT_SPLITNAME_FIELDS);
    if (!fields) return;
    const row: ReportRow = { split: splitName(context.args[1] ?? 'LVM', context.args[0]) };
    writeReport(context, fields, [row]);
  },
};

export const readCommands: readonly Command[] = [version, targets, ls, info, targetCommand('table'), targetCommand('status'), deps, mangle, splitname];
