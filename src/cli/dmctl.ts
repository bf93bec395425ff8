#!/usr/bin/env node
// dmctl: dmsetup's everyday commands, printed the way dmsetup prints them,
// plus loop device commands. It only calls the library.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

import {
  attachedLoopNumbers,
  attachLoop,
  detachLoop,
  DmError,
  openDeviceMapper,
  parseTable,
  type DeviceId,
  type DeviceInfo,
  type DeviceMapper,
} from '../index.js';

const USAGE = `Usage: dmctl [--verbose] COMMAND [ARGS]

Commands (as dmsetup names them):
  version                               print the library and kernel interface versions
  targets                               list the loaded target types with versions
  ls                                    list devices as NAME\\t(MAJOR:MINOR)
  info [NAME]                           show one device, or all of them
  table [NAME]                          print the live table (--inactive for the loaded one)
  status [NAME]                         print each target's status line
  create NAME [--table LINES | FILE]    create a device; without --table or FILE the table is read from stdin
         [-u|--uuid UUID] [-r|--readonly] [--notable]
  load NAME [--table LINES | FILE]      load an inactive table (also: reload)
  suspend NAME [--noflush] [--nolockfs] suspend I/O
  resume NAME                           make a loaded table live and resume I/O
  remove NAME [--retry] [--deferred]    remove a device (-f is accepted for dmsetup scripts)
  rename NAME NEW_NAME                  rename a device
  message NAME SECTOR MESSAGE...        send a target message, printing its reply if any
  clear NAME                            drop the inactive table
  deps NAME                             list the devices the table uses
  loop attach FILE [-r]                 attach FILE to a free loop device (no autoclear) and print it
  loop detach DEVICE                    detach a loop device
  loop ls                               list attached loop devices with their backing files

Options: -v|--verbose prints each ioctl on stderr (same as NODE_DEBUG=dm).`;

const OPTIONS = {
  table: { type: 'string' },
  uuid: { type: 'string', short: 'u' },
  readonly: { type: 'boolean', short: 'r' },
  notable: { type: 'boolean' },
  inactive: { type: 'boolean' },
  noflush: { type: 'boolean' },
  nolockfs: { type: 'boolean' },
  retry: { type: 'boolean' },
  deferred: { type: 'boolean' },
  force: { type: 'boolean', short: 'f' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

class UsageError extends Error {}

function need(args: string[], count: number, usage: string): void {
  if (args.length < count) throw new UsageError(`Missing argument. Usage: dmctl ${usage}`);
}

function libraryVersion(): string {
  const require = createRequire(import.meta.url);
  return (require('../../../package.json') as { version: string }).version;
}

function tablesPresent(info: DeviceInfo): string {
  if (info.liveTable && info.inactiveTable) return 'LIVE & INACTIVE';
  if (info.liveTable) return 'LIVE';
  if (info.inactiveTable) return 'INACTIVE';
  return 'None';
}

function readAhead(info: DeviceInfo): string {
  try {
    const kib = Number(fs.readFileSync(`/sys/dev/block/${info.major}:${info.minor}/queue/read_ahead_kb`, 'utf8'));
    return String(kib * 2);
  } catch {
    return '0';
  }
}

function printInfo(info: DeviceInfo): void {
  const state = `${info.suspended ? 'SUSPENDED' : 'ACTIVE'}${info.readOnly ? ' (READ-ONLY)' : ''}`;
  const lines = [
    `Name:              ${info.name}`,
    `State:             ${state}`,
    `Read Ahead:        ${readAhead(info)}`,
    `Tables present:    ${tablesPresent(info)}`,
    `Open count:        ${info.openCount}`,
    `Event number:      ${info.eventNr}`,
    `Major, minor:      ${info.major}, ${info.minor}`,
    `Number of targets: ${info.targetCount}`,
  ];
  if (info.uuid) lines.push(`UUID: ${info.uuid}`);
  console.log(`${lines.join('\n')}\n`);
}

function readTable(values: Values, file: string | undefined): string {
  if (values.table !== undefined) return values.table;
  return fs.readFileSync(file ?? 0, 'utf8');
}

function deviceNames(dm: DeviceMapper, name: string | undefined): string[] {
  return name === undefined ? dm.listDevices().map((d) => d.name).sort() : [name];
}

function printTargets(dm: DeviceMapper, name: string | undefined, kind: 'table' | 'status', values: Values): void {
  for (const device of deviceNames(dm, name)) {
    const targets = kind === 'table' ? dm.table(device, { inactive: values.inactive }) : dm.status(device, { noflush: values.noflush });
    const prefix = name === undefined ? `${device}: ` : '';
    for (const t of targets) console.log(`${prefix}${t.start} ${t.length} ${t.type} ${t.params}`);
  }
}

async function runLoop(args: string[], values: Values): Promise<void> {
  const [action, target] = args;
  switch (action) {
    case 'attach': {
      need(args, 2, 'loop attach FILE [-r]');
      // Without autoclear: the device outlives this process, as losetup's does.
      const loop = attachLoop(target, { readOnly: values.readonly, autoclear: false });
      loop.close();
      console.log(loop.path);
      return;
    }
    case 'detach':
      need(args, 2, 'loop detach DEVICE');
      detachLoop(target);
      return;
    case 'ls':
      console.log('NAME       BACK-FILE');
      for (const number of attachedLoopNumbers()) {
        const backing = fs.readFileSync(`/sys/block/loop${number}/loop/backing_file`, 'utf8').trim();
        console.log(`/dev/loop${number}`.padEnd(11) + backing);
      }
      return;
    default:
      throw new UsageError(`Unknown loop command ${JSON.stringify(action)}; use attach, detach or ls`);
  }
}

const DM_COMMANDS = new Set(['version', 'targets', 'ls', 'info', 'table', 'status', 'create', 'load', 'reload', 'suspend', 'resume', 'remove', 'rename', 'message', 'clear', 'deps']);

async function run(command: string, args: string[], values: Values): Promise<void> {
  if (command === 'loop') return runLoop(args, values);
  if (!DM_COMMANDS.has(command)) throw new UsageError(`Unknown command ${JSON.stringify(command)}; run dmctl --help for the list`);
  const dm = openDeviceMapper();
  try {
    const [name] = args;
    switch (command) {
      case 'version':
        console.log(`Library version:   dm-ioctl ${libraryVersion()}`);
        console.log(`Driver version:    ${dm.version().join('.')}`);
        return;
      case 'targets':
        for (const t of dm.listVersions()) console.log(`${t.name.padEnd(16)} v${t.version.join('.')}`);
        return;
      case 'ls': {
        const devices = dm.listDevices();
        if (devices.length === 0) console.log('No devices found');
        for (const d of devices.sort((a, b) => a.name.localeCompare(b.name))) {
          const info = dm.info(d.name);
          if (info.exists) console.log(`${d.name}\t(${info.major}:${info.minor})`);
        }
        return;
      }
      case 'info': {
        const names = deviceNames(dm, name);
        if (names.length === 0) console.log('No devices found');
        for (const device of names) {
          const info = dm.info(device);
          if (!info.exists) {
            console.log('Device does not exist.');
            process.exitCode = 1;
            continue;
          }
          printInfo(info);
        }
        return;
      }
      case 'table':
      case 'status':
        printTargets(dm, name, command, values);
        return;
      case 'create': {
        need(args, 1, 'create NAME [--table LINES | FILE]');
        if (values.notable) {
          dm.create(name, { uuid: values.uuid, readOnly: values.readonly });
          return;
        }
        const table = parseTable(readTable(values, args[1]));
        await dm.createDevice(name, { table, uuid: values.uuid, readOnly: values.readonly });
        return;
      }
      case 'load':
      case 'reload':
        need(args, 1, `${command} NAME [--table LINES | FILE]`);
        dm.load(name, parseTable(readTable(values, args[1])), { readOnly: values.readonly });
        return;
      case 'suspend':
        need(args, 1, 'suspend NAME');
        dm.suspend(name, { noflush: values.noflush, nolockfs: values.nolockfs });
        return;
      case 'resume':
        need(args, 1, 'resume NAME');
        await dm.resume(name);
        return;
      case 'remove':
        need(args, 1, 'remove NAME');
        await dm.remove(name, { retry: values.retry, deferred: values.deferred });
        return;
      case 'rename':
        need(args, 2, 'rename NAME NEW_NAME');
        await dm.rename(name, args[1]);
        return;
      case 'message': {
        need(args, 3, 'message NAME SECTOR MESSAGE...');
        if (!/^\d+$/.test(args[1])) throw new UsageError(`Invalid sector ${JSON.stringify(args[1])}: use a decimal number`);
        const reply = dm.message(name as DeviceId, BigInt(args[1]), args.slice(2).join(' '));
        if (reply) console.log(reply);
        return;
      }
      case 'clear':
        need(args, 1, 'clear NAME');
        dm.clear(name);
        return;
      case 'deps': {
        need(args, 1, 'deps NAME');
        const deps = dm.deps(name);
        console.log(`${deps.length} dependencies\t: ${deps.map((d) => `(${d.major}, ${d.minor})`).join(' ')}`);
        return;
      }
      default:
        throw new UsageError(`Unknown command ${JSON.stringify(command)}; run dmctl --help for the list`);
    }
  } finally {
    dm.close();
  }
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    console.error(`dmctl: ${(error as Error).message}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.verbose && !/\bdm\b/.test(process.env.NODE_DEBUG ?? '')) {
    // Node reads NODE_DEBUG once at start-up, so run again with it set.
    const env = { ...process.env, NODE_DEBUG: [process.env.NODE_DEBUG, 'dm'].filter(Boolean).join(',') };
    return spawnSync(process.execPath, process.argv.slice(1), { env, stdio: 'inherit' }).status ?? 1;
  }
  const [command, ...args] = positionals;
  if (values.help || command === undefined || command === 'help') {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  try {
    await run(command, args, values);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`dmctl: ${error.message}`);
      return 2;
    }
    if (error instanceof DmError) {
      console.error(`dmctl ${command}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
