#!/usr/bin/env node
// Records the ioctl buffers Debian's dmsetup (libdevmapper) sends for each
// command, for test/unit/dmsetup-fixtures.test.ts. Run it on the host:
//   npm run build && node scripts/capture-dmsetup-fixtures.mjs > fixtures/dmsetup-1.02.185.json
// On the host it compiles tools/ioctl-capture/capture.c with gcc into
// dist/tools/ioctl-capture/capture.so and runs itself in the guest with
// --in-guest. In the guest it runs /sbin/dmsetup once per step with that
// library in LD_PRELOAD and prints the fixture JSON on stdout.
//
// dmsetup runs with DM_DISABLE_UDEV=1 because the guest has no udev: libdm
// then makes the /dev/mapper nodes itself and sends no udev cookie, but it
// still puts its udev flags in the high 16 bits of event_nr.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPOSITORY_ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const SHIM_SOURCE = 'tools/ioctl-capture/capture.c';
const SHIM_LIBRARY = 'dist/tools/ioctl-capture/capture.so';
const DMSETUP = '/sbin/dmsetup';
const GUEST_TIMEOUT_SECONDS = 600;

/** sizeof(struct dm_ioctl) in include/uapi/linux/dm-ioctl.h. */
const DM_IOCTL_SIZE = 312;
/** Every record in the dm data area starts on this boundary. */
const DM_ALIGNMENT = 8;
/** The device-mapper commands, indexed by ioctl number (`_IOC_NR`). */
const DM_COMMANDS = [
  'DM_VERSION',
  'DM_REMOVE_ALL',
  'DM_LIST_DEVICES',
  'DM_DEV_CREATE',
  'DM_DEV_REMOVE',
  'DM_DEV_RENAME',
  'DM_DEV_SUSPEND',
  'DM_DEV_STATUS',
  'DM_DEV_WAIT',
  'DM_TABLE_LOAD',
  'DM_TABLE_CLEAR',
  'DM_TABLE_DEPS',
  'DM_TABLE_STATUS',
  'DM_LIST_VERSIONS',
  'DM_TARGET_MSG',
  'DM_DEV_SET_GEOMETRY',
  'DM_DEV_ARM_POLL',
  'DM_GET_TARGET_VERSION',
];
/** Bits 0..7 of an ioctl request number: the command number (`_IOC_NR`). */
const IOC_NR_MASK = 0xff;

const PREFIX = 'dmioctl-test-';
const ZERO = `${PREFIX}zero`;
const UUID_DEVICE = `${PREFIX}uuid`;
const UUID = `${PREFIX}uuid-0001`;
const READ_ONLY = `${PREFIX}ro`;
const MINOR_DEVICE = `${PREFIX}minor`;
const REQUESTED_MINOR = '200';
const LINEAR = `${PREFIX}linear`;
const RENAMED = `${PREFIX}renamed`;
const RENAMED_UUID = `${PREFIX}renamed-uuid`;
const SPACED = `${PREFIX}a b`;
const POOL = `${PREFIX}pool`;
const POOL_SECTORS = 131072;
const POOL_METADATA_BYTES = 4 << 20;
const POOL_DATA_BYTES = 64 << 20;

function buildShim() {
  const output = path.join(REPOSITORY_ROOT, SHIM_LIBRARY);
  fs.mkdirSync(path.dirname(output), { recursive: true });
  execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-o', output, path.join(REPOSITORY_ROOT, SHIM_SOURCE), '-ldl'], {
    stdio: 'inherit',
  });
}

function runOnHost() {
  buildShim();
  const script = path.relative(REPOSITORY_ROOT, fileURLToPath(import.meta.url));
  const child = spawn(
    process.execPath,
    ['scripts/guest.mjs', '--timeout', String(GUEST_TIMEOUT_SECONDS), '--', 'node', script, '--in-guest'],
    { cwd: REPOSITORY_ROOT, stdio: 'inherit' },
  );
  child.on('exit', (code, signal) => process.exit(code ?? 128 + os.constants.signals[signal]));
}

/** Returns the length of `buf` without its trailing zero bytes, at least the header and rounded up to 8. */
function usedLength(buf) {
  let end = buf.length;
  while (end > DM_IOCTL_SIZE && buf[end - 1] === 0) end--;
  return Math.min(buf.length, Math.max(DM_IOCTL_SIZE, Math.ceil(end / DM_ALIGNMENT) * DM_ALIGNMENT));
}

/** Turns the shim's `in` and `out` lines into one record per ioctl. */
function parseCalls(text) {
  const calls = [];
  for (const line of text.split('\n').filter(Boolean)) {
    const fields = line.split(' ');
    const request = parseInt(fields[1], 16);
    if (fields[0] === 'in') {
      const sent = Buffer.from(fields[3], 'hex');
      calls.push({
        command: DM_COMMANDS[request & IOC_NR_MASK] ?? `unknown ${request & IOC_NR_MASK}`,
        request,
        // The request is the first `sent.length / 2` bytes of a buffer of
        // data_size bytes whose remaining bytes are all zero.
        dataSize: Number(fields[2]),
        sent: sent.subarray(0, usedLength(sent)).toString('hex'),
      });
    } else {
      const call = calls.at(-1);
      call.result = Number(fields[2]);
      call.errno = Number(fields[3]);
      // The bytes after the reply's data_size are left from the request,
      // which libdm zeroed, so they are trimmed as in `sent`.
      const reply = Buffer.from(fields[4], 'hex');
      call.reply = reply.subarray(0, usedLength(reply)).toString('hex');
    }
  }
  return calls;
}

function dmsetup(label, args, library) {
  const captureFile = path.join(os.tmpdir(), 'dm-ioctl-capture.txt');
  fs.rmSync(captureFile, { force: true });
  const run = spawnSync(DMSETUP, args, {
    env: { ...process.env, DM_DISABLE_UDEV: '1', LD_PRELOAD: library, DM_IOCTL_CAPTURE: captureFile },
    encoding: 'utf8',
  });
  const text = fs.existsSync(captureFile) ? fs.readFileSync(captureFile, 'utf8') : '';
  return { label, argv: ['dmsetup', ...args], exitCode: run.status, output: run.stdout.trim(), calls: parseCalls(text) };
}

/** Runs dmsetup without the capture library, for the values later steps need. */
function query(args) {
  const run = spawnSync(DMSETUP, args, { env: { ...process.env, DM_DISABLE_UDEV: '1' }, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`dmsetup ${args.join(' ')} failed: ${run.stderr}`);
  return run.stdout.trim();
}

function deviceMapperMajor() {
  const line = fs.readFileSync('/proc/devices', 'utf8').split('\n').find((l) => l.endsWith(' device-mapper'));
  return line.trim().split(' ')[0];
}

function field(device, name) {
  return query(['info', '-c', '--noheadings', '-o', name, device]);
}

async function runInGuest() {
  const library = path.resolve(SHIM_LIBRARY);
  const { attachLoop } = await import('../dist/src/loop/loop.js');
  const records = [];
  const capture = (label, ...args) => records.push(dmsetup(label, args, library));
  const major = deviceMapperMajor();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmsetup-fixtures-'));

  capture('version', 'version');
  capture('targets', 'targets');
  capture('target-version', 'target-version', 'thin-pool');
  capture('create', 'create', ZERO, '--notable');
  capture('create with uuid', 'create', UUID_DEVICE, '--notable', '--uuid', UUID);
  capture('create read-only with table', 'create', READ_ONLY, '--readonly', '--table', '0 8 zero');
  capture('create with minor', 'create', MINOR_DEVICE, '--notable', '--major', major, '--minor', REQUESTED_MINOR);
  capture('create mangled name', 'create', SPACED, '--notable');
  capture('ls', 'ls');

  const twoTargets = path.join(workDir, 'two-targets.table');
  fs.writeFileSync(twoTargets, '0 8 zero\n8 8 error\n');
  capture('load two targets', 'load', ZERO, twoTargets);
  capture('table inactive', 'table', '--inactive', ZERO);
  capture('clear', 'clear', ZERO);
  capture('reload read-only', 'reload', '--readonly', ZERO, '--table', '0 16 zero');
  capture('load backslash', 'load', UUID_DEVICE, '--table', '0 8 linear /dev/no\\such 0');
  capture('load zero', 'load', ZERO, '--table', '0 16 zero');
  capture('resume', 'resume', ZERO);
  const zeroMinor = field(ZERO, 'minor');

  capture('info', 'info', ZERO);
  capture('info by uuid', 'info', '-u', UUID);
  capture('info by major and minor', 'info', '-j', major, '-m', zeroMinor);
  capture('info noopencount', 'info', '--noopencount', ZERO);
  capture('table', 'table', ZERO);
  capture('status', 'status', ZERO);
  capture('status noflush', 'status', '--noflush', ZERO);
  capture('measure', 'measure', ZERO);

  capture('create linear with table', 'create', LINEAR, '--table', `0 8 linear ${major}:${zeroMinor} 0`);
  capture('deps', 'deps', LINEAR);
  capture('deps inactive', 'deps', '--inactive', LINEAR);

  capture('suspend', 'suspend', ZERO);
  capture('resume after suspend', 'resume', ZERO);
  capture('suspend noflush', 'suspend', '--noflush', ZERO);
  capture('resume noflush', 'resume', '--noflush', ZERO);
  capture('suspend nolockfs', 'suspend', '--nolockfs', ZERO);
  capture('resume nolockfs', 'resume', '--nolockfs', ZERO);

  // DM_DEV_WAIT returns at once when the event number it is given differs
  // from the device's, as one that already happened does.
  const pastEvent = String(Number(field(ZERO, 'events')) + 1);
  capture('wait', 'wait', ZERO, pastEvent);
  capture('wait noflush', 'wait', '--noflush', ZERO, pastEvent);
  capture('setgeometry', 'setgeometry', ZERO, '1', '64', '32', '0');
  capture('mknodes device', 'mknodes', ZERO);
  capture('mknodes', 'mknodes');
  capture('message sector', 'message', ZERO, '8', '@cancel_deferred_remove');

  const metadataFile = path.join(workDir, 'metadata.img');
  const dataFile = path.join(workDir, 'data.img');
  fs.writeFileSync(metadataFile, Buffer.alloc(0));
  fs.truncateSync(metadataFile, POOL_METADATA_BYTES);
  fs.writeFileSync(dataFile, Buffer.alloc(0));
  fs.truncateSync(dataFile, POOL_DATA_BYTES);
  const metadata = attachLoop(metadataFile);
  const data = attachLoop(dataFile);
  query(['create', POOL, '--table', `0 ${POOL_SECTORS} thin-pool ${metadata.path} ${data.path} 128 32768`]);
  capture('message create_thin', 'message', POOL, '0', 'create_thin 0');
  capture('status target', 'status', '--target', 'thin-pool');
  capture('wipe_table', 'wipe_table', READ_ONLY);

  capture('rename', 'rename', LINEAR, RENAMED);
  capture('rename setuuid', 'rename', RENAMED, '--setuuid', RENAMED_UUID);
  capture('remove', 'remove', RENAMED);
  capture('remove retry', 'remove', '--retry', READ_ONLY);
  capture('remove deferred', 'remove', '--deferred', MINOR_DEVICE);
  capture('remove mangled name', 'remove', SPACED);
  capture('remove_all', 'remove_all');
  fs.rmSync(workDir, { recursive: true, force: true });

  const fixture = {
    tool: query(['version']).split('\n')[0],
    kernel: os.release(),
    shim: SHIM_SOURCE,
    environment: { DM_DISABLE_UDEV: '1' },
    records,
  };
  process.stdout.write(`${JSON.stringify(fixture, null, 1)}\n`);
}

if (process.argv.includes('--in-guest')) {
  await runInGuest();
} else {
  runOnHost();
}
