// Commands that change devices: create, load/reload, clear, suspend, resume,
// remove, remove_all, rename, message, wait and setgeometry, with dmsetup's
// argument rules and error lines.

import fs from 'node:fs';

import type { DeviceId, TableTarget } from '../index.js';
import { CommandFailure, hasSwitch, optionValue, type Command, type CommandContext } from './command.js';
import { labelFor, selectDevice, selectsByOption } from './device.js';
import { asCommand, type DeviceLabel } from './errors.js';

const DECIMAL = /^\d+$/;

/**
 * Parses table text as dmsetup reads it: blank lines and lines starting with
 * `#` are skipped; each other line is START LENGTH TYPE [PARAMS...].
 */
export function parseTableText(text: string, source: string): TableTarget[] {
  const targets: TableTarget[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) return;
    const match = /^(\d+)\s+(\d+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!match) throw new CommandFailure(`Invalid format on line ${index + 1} of table ${source}.`);
    targets.push({ start: BigInt(match[1]), length: BigInt(match[2]), type: match[3], params: match[4] });
  });
  return targets;
}

/** The table of `create`/`load`: from FILE, else --table, else standard input. */
function readTable(context: CommandContext, file: string | undefined): TableTarget[] {
  if (file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      throw new CommandFailure(`Couldn't open '${file}' for reading`);
    }
    return parseTableText(text, file);
  }
  const inline = optionValue(context.parsed, 'table');
  return parseTableText(inline ?? context.readStdin(), '');
}

const create: Command = {
  name: 'create',
  usage:
    '<dev_name>\n' +
    '\t    [-u|--uuid <uuid>] [--addnodeonresume|--addnodeoncreate]\n' +
    '\t    [-n|--notable|--table {<table>|<table_file>}]',
  summary: 'create a device and make its table live; the table comes from --table, a file or stdin',
  details:
    '--table LINES gives the table (lines separated by newlines); otherwise TABLE_FILE, otherwise stdin.\n' +
    'Each line is START LENGTH TYPE PARAMS, START and LENGTH in 512-byte sectors.\n' +
    '-u|--uuid UUID sets the uuid (at most 128 bytes). -r|--readonly makes the device read-only.\n' +
    '-n|--notable creates the device with no table. An empty table does the same.\n' +
    '--addnodeoncreate and --addnodeonresume are accepted; dmctl makes /dev/mapper/NAME when the table goes live.',
  minArgs: 0,
  maxArgs: 2,
  async run(context) {
    const [name, file] = context.args;
    if (name === undefined) throw new CommandFailure('Please provide a name for the new device.');
    const dm = context.dm();
    const uuid = optionValue(context.parsed, 'uuid');
    const readOnly = hasSwitch(context.parsed, 'readonly');
    const table = hasSwitch(context.parsed, 'notable') ? [] : readTable(context, file);
    const label: DeviceLabel = { name, uuid };
    const created = await asCommand('create', label, () => dm.create(name, { uuid, readOnly }));
    if (table.length === 0) return;
    const loaded: DeviceLabel = { name, uuid, major: created.major, minor: created.minor };
    try {
      await asCommand('reload', loaded, () => dm.load(name, table, { readOnly }));
      await asCommand('resume', loaded, () => dm.resume(name));
    } catch (error) {
      // As libdm does: a device whose table failed is removed again.
      await dm.remove(name, { ignoreMissing: true }).catch(() => undefined);
      throw error;
    }
  },
};

function loadCommand(name: 'load' | 'reload'): Command {
  return {
    name,
    usage: '<device> [<table>|<table_file>]',
    summary: name === 'load' ? 'load an inactive table; resume makes it live' : 'the same as load',
    hidden: name === 'reload',
    details: 'The table comes from --table LINES, TABLE_FILE or stdin. -r|--readonly loads it read-only.',
    minArgs: 0,
    maxArgs: 2,
    async run(context) {
      if (hasSwitch(context.parsed, 'notable')) throw new CommandFailure('--notable only available when creating new device');
      let deviceName: string | undefined;
      let args = context.args;
      if (!selectsByOption(context)) {
        if (args.length === 0) throw new CommandFailure('Please specify device.');
        [deviceName, ...args] = args;
      } else if (args.length > 1) {
        throw new CommandFailure('Too many command line arguments.');
      }
      const device = selectDevice(context, deviceName, 'reload');
      const table = readTable(context, args[0]);
      const dm = context.dm();
      await asCommand('reload', device.label, () => dm.load(device.id, table, { readOnly: hasSwitch(context.parsed, 'readonly') }));
    },
  };
}

/** A command that acts on each named device in turn, stopping at the first failure. */
function perDevice(
  spec: Omit<Command, 'run' | 'minArgs' | 'maxArgs'>,
  operation: string,
  act: (context: CommandContext, id: DeviceId, label: DeviceLabel) => unknown,
): Command {
  return {
    ...spec,
    minArgs: 0,
    maxArgs: -1,
    repeatable: true,
    async run(context) {
      const names = context.args.length === 0 ? [undefined] : context.args;
      for (const name of names) {
        const device = selectDevice(context, name, operation);
        await asCommand(operation, device.label, () => act(context, device.id, device.label));
      }
    },
  };
}

const clear = perDevice(
  { name: 'clear', usage: '<device>', summary: 'drop the inactive table', details: 'The live table is not touched.' },
  'clear',
  (context, id) => context.dm().clear(id),
);

const suspend = perDevice(
  {
    name: 'suspend',
    usage: '[--noflush] [--nolockfs] <device>...',
    summary: 'suspend I/O to devices',
    details: '--noflush keeps queued I/O instead of flushing it; --nolockfs does not freeze a mounted filesystem first.',
  },
  'suspend',
  (context, id) => context.dm().suspend(id, { noflush: hasSwitch(context.parsed, 'noflush'), nolockfs: hasSwitch(context.parsed, 'nolockfs') }),
);

const resume = perDevice(
  {
    name: 'resume',
    usage: '[--noflush] [--nolockfs] <device>...',
    summary: 'make a loaded table live and resume I/O',
    details: '--noflush and --nolockfs as for suspend. /dev/mapper/NAME exists when the command ends.',
  },
  'resume',
  (context, id) => context.dm().resume(id, { noflush: hasSwitch(context.parsed, 'noflush'), nolockfs: hasSwitch(context.parsed, 'nolockfs') }),
);

/** Replaces the table of a device with an error target of the same size, as `remove -f` does first. */
async function wipeTable(context: CommandContext, id: DeviceId): Promise<void> {
  const dm = context.dm();
  try {
    const size = dm.table(id).reduce((sum, line) => sum + line.length, 0n);
    dm.load(id, [{ start: 0n, length: size, type: 'error', params: '' }]);
    await dm.resume(id, { noflush: true, nolockfs: true });
  } catch {
    // As dmsetup: the remove that follows reports what is wrong.
  }
}

const remove: Command = {
  name: 'remove',
  usage: '[--deferred] [-f|--force] [--retry] <device>...',
  summary: 'remove devices',
  details:
    '--retry retries a busy device 25 times, 200 ms apart. --deferred removes it when its last user closes it.\n' +
    '-f|--force first replaces the table with an error target, so queued I/O fails instead of waiting.',
  minArgs: 0,
  maxArgs: -1,
  repeatable: true,
  async run(context) {
    const names = context.args.length === 0 ? [undefined] : context.args;
    for (const name of names) {
      const device = selectDevice(context, name, 'remove');
      if (hasSwitch(context.parsed, 'force')) await wipeTable(context, device.id);
      const options = { retry: hasSwitch(context.parsed, 'retry'), deferred: hasSwitch(context.parsed, 'deferred') };
      await asCommand('remove', device.label, () => context.dm().remove(device.id, options));
    }
  },
};

const removeAll: Command = {
  name: 'remove_all',
  usage: '[-f|--force]',
  summary: 'remove every device that is not open',
  details: '-f|--force replaces the tables of the devices left with error targets and tries again. --deferred marks open devices for deferred removal.',
  minArgs: 0,
  maxArgs: 0,
  async run(context) {
    const dm = context.dm();
    const deferred = hasSwitch(context.parsed, 'deferred');
    await asCommand('remove_all', { name: '' }, () => dm.removeAll({ deferred }));
    if (!hasSwitch(context.parsed, 'force')) return;
    const left = dm.listDevices();
    if (left.length === 0) return;
    for (const entry of left) await wipeTable(context, entry.name);
    await asCommand('remove_all', { name: '' }, () => dm.removeAll({ deferred }));
    const still = dm.listDevices().length;
    if (still > 0) context.err.write(`Unable to remove ${still} device(s).\n`);
  },
};

const rename: Command = {
  name: 'rename',
  usage: '<device> [--setuuid] <new_name_or_uuid>',
  summary: 'rename a device, or with --setuuid set the uuid of a device that has none',
  details: 'The kernel lets a uuid be set once; it cannot be changed afterwards.',
  minArgs: 1,
  maxArgs: 2,
  async run(context) {
    const name = context.args.length === 2 ? context.args[0] : undefined;
    const target = context.args[context.args.length - 1];
    const device = selectDevice(context, name, 'rename');
    const dm = context.dm();
    if (hasSwitch(context.parsed, 'setuuid')) await asCommand('rename', device.label, () => dm.setUuid(device.id, target));
    else await asCommand('rename', device.label, () => dm.rename(device.id, target));
  },
};

const message: Command = {
  name: 'message',
  usage: '<device> <sector> <message>',
  summary: "send a message to the target that maps SECTOR, printing the target's reply",
  details: 'SECTOR is a decimal 512-byte sector number; the words after it are joined with spaces into the message.',
  minArgs: 2,
  maxArgs: -1,
  async run(context) {
    let args = context.args;
    let name: string | undefined;
    if (!selectsByOption(context)) [name, ...args] = args;
    const device = selectDevice(context, name, 'message');
    const [sector, ...words] = args;
    if (sector === undefined || !DECIMAL.test(sector)) throw new CommandFailure('Invalid sector.');
    if (words.length === 0) {
      // NOTE: dmsetup sends the empty message and prints the kernel's EINVAL;
      // the library rejects an empty message before any ioctl.
      throw new CommandFailure('No message supplied.');
    }
    const dm = context.dm();
    const reply = await asCommand('message', device.label, () => dm.message(device.id, BigInt(sector), words.join(' ')));
    if (reply) context.out.write(reply.endsWith('\n') ? reply : `${reply}\n`);
  },
};

/** C's atoi(): the leading decimal digits, 0 when there are none. */
function atoi(text: string): number {
  const match = /^\s*([+-]?\d+)/.exec(text);
  return match ? Number(match[1]) : 0;
}

const wait: Command = {
  name: 'wait',
  usage: '<device> [<event_nr>] [--noflush]',
  summary: "wait until the device's event number differs from EVENT_NR (default 0)",
  details: 'Returns at once when the event number already differs. --noflush does not flush before reading status.',
  minArgs: 0,
  maxArgs: 2,
  async run(context) {
    let args = context.args;
    let name: string | undefined;
    if (!selectsByOption(context)) {
      if (args.length === 0) throw new CommandFailure('No device specified.');
      [name, ...args] = args;
    }
    const device = selectDevice(context, name, 'waitevent');
    const eventNr = args.length > 0 ? atoi(args[args.length - 1]) : 0;
    const dm = context.dm();
    await asCommand('waitevent', device.label, () => dm.devWait(device.id, eventNr, { noflush: hasSwitch(context.parsed, 'noflush') }));
  },
};

const setgeometry: Command = {
  name: 'setgeometry',
  usage: '<device> <cyl> <head> <sect> <start>',
  summary: 'set the disk geometry the device reports (HDIO_GETGEO)',
  details: 'CYL, HEAD and SECT are counts; START is the first sector of the device on the disk.',
  minArgs: 4,
  maxArgs: 5,
  async run(context) {
    let args = context.args;
    let name: string | undefined;
    if (!selectsByOption(context)) [name, ...args] = args;
    if (args.length !== 4) throw new CommandFailure('Incorrect number of arguments.');
    const device = selectDevice(context, name, 'setgeometry');
    const [cylinders, heads, sectors, start] = args.map(Number);
    await asCommand('setgeometry', labelFor(context, name), () => context.dm().setGeometry(device.id, { cylinders, heads, sectors, start }));
  },
};

export const writeCommands: readonly Command[] = [
  create,
  loadCommand('load'),
  loadCommand('reload'),
  clear,
  suspend,
  resume,
  remove,
  removeAll,
  rename,
  message,
  wait,
  setgeometry,
];
