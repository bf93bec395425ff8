// The measurements of `npm run bench`, run inside the guest by bench/run.mjs
// (which copies this file to dist/bench/ with the C peer dist/bench/dmbench).
// It prints progress lines starting with "bench:" and one last line
// "bench-result: JSON" with every figure in nanoseconds.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Paths are relative to dist/bench/, where bench/run.mjs puts this file.
import {
  checkName,
  decodeDev,
  decodeHeader,
  deviceInfo,
  DeviceMapper,
  DmFlag,
  dmRequest,
  DM_IOCTL_SIZE,
  encodeHeader,
} from '../src/index.js';
import { demangleName, mangleName } from '../src/dm/mangle.js';
import { libc as loadLibc } from '../src/ioctl/libc.js';

const DMBENCH = path.join(path.dirname(fileURLToPath(import.meta.url)), 'dmbench');
const DMSETUP = '/sbin/dmsetup';
const PREFIX = 'dmioctl-test-bench-';
const INFO_DEVICE = `${PREFIX}info`;
/** Offsets in struct dm_ioctl. */
const Offset = { dataSize: 12, dataStart: 16, targetCount: 20, openCount: 24, flags: 28, eventNr: 32, dev: 40, name: 48, uuid: 176 };
const DEV_OFFSET = Offset.dev;
/** Offsets in struct dm_name_list, and the flag that says a uuid follows the event number. */
const NameList = { dev: 0, next: 8, name: 12 };
const DM_NAME_LIST_FLAG_HAS_UUID = 1;
/** sizeof(dm_ioctl.uuid), the NUL included. */
const DM_UUID_LEN = 129;
/** Checked and mangled names the candidate info() keeps. */
const KERNEL_NAME_CACHE_SIZE = 256;
/** The library's and libdm's first buffer size for DM_LIST_DEVICES. */
const LIST_INITIAL_BUFFER_SIZE = 16 * 1024;
/** Names whose bytes are all on libdm's whitelist, which mangling leaves unchanged. */
const UNMANGLED_NAME = /^[0-9A-Za-z#+\-.:=@_]*$/;

/** Each measurement runs in this many rounds, interleaved with its peers, and its fastest round counts. */
const ROUNDS = 5;
const INFO_WARMUP = 2000;
const INFO_ITERATIONS = 20000;
const CYCLE_DEVICES = Number(process.env.DM_BENCH_CYCLE_DEVICES ?? 500);
const CYCLE_DMSETUP_DEVICES = Number(process.env.DM_BENCH_DMSETUP_DEVICES ?? 100);
const LIST_COUNTS = (process.env.DM_BENCH_LIST_COUNTS ?? '1000,5000,10000').split(',').map(Number);
/** Listing repeats per device count: fewer for larger lists, whose single call is longer. */
const LIST_ITERATIONS = { 1000: 10, 5000: 3, 10000: 2 };
const DMSETUP_LS_RUNS = 3;
const ZERO_TABLE = [{ start: 0n, length: 8n, type: 'zero', params: '' }];

function progress(message) {
  process.stdout.write(`bench: ${message}\n`);
}

/** Runs the C peer and returns its "ns=" figure. */
function peer(...args) {
  const run = spawnSync(DMBENCH, args.map(String), { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`dmbench ${args.join(' ')} failed: ${run.stderr}`);
  return Number(/ns=(\d+)/.exec(run.stdout)[1]);
}

function dmsetup(...args) {
  const run = spawnSync(DMSETUP, args, { env: { ...process.env, DM_DISABLE_UDEV: '1' }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`dmsetup ${args.join(' ')} failed: ${run.stderr}`);
  return run.stdout;
}

function elapsed(start) {
  return Number(process.hrtime.bigint() - start);
}

/**
 * A copy of `dm.info(name)` with the changes proposed for src/: checked names
 * are cached, names on the whitelist skip mangling, the header comes from a
 * per-command template with
 * only the name written per call, and the reply is decoded without BigInt and
 * without decoding fields DeviceInfo does not use. It returns what info() does.
 */
function candidateInfo(libc, fd) {
  const template = Buffer.alloc(DM_IOCTL_SIZE);
  encodeHeader(template, { version: [4, 0, 0], dataSize: DM_IOCTL_SIZE });
  const buf = Buffer.alloc(DM_IOCTL_SIZE);
  const request = dmRequest('DM_DEV_STATUS');
  const readString = (offset, size) => {
    const end = buf.indexOf(0, offset);
    return buf.toString('utf8', offset, end < 0 || end > offset + size ? offset + size : end);
  };
  // Names already checked and mangled, so a repeated name costs one lookup.
  const kernelNames = new Map();
  return (name) => {
    let kernelName = kernelNames.get(name);
    if (kernelName === undefined) {
      checkName(name, 'DM_DEV_STATUS');
      kernelName = UNMANGLED_NAME.test(name) ? name : mangleName(name);
      if (kernelNames.size < KERNEL_NAME_CACHE_SIZE) kernelNames.set(name, kernelName);
    }
    template.copy(buf);
    buf.write(kernelName, Offset.name, 'utf8');
    const result = libc.ioctlBuffer(fd, request, buf);
    if (result < 0) throw new Error(`DM_DEV_STATUS failed: errno ${-result}`);
    const flags = buf.readUInt32LE(Offset.flags);
    const low = buf.readUInt32LE(Offset.dev);
    const high = buf.readUInt32LE(Offset.dev + 4);
    return {
      exists: true,
      name,
      uuid: readString(Offset.uuid, DM_UUID_LEN),
      major: ((low >>> 8) & 0xfff) | (high & 0xfffff000),
      minor: (low & 0xff) | ((low >>> 12) & 0xfff00),
      openCount: buf.readInt32LE(Offset.openCount),
      eventNr: buf.readUInt32LE(Offset.eventNr),
      targetCount: buf.readUInt32LE(Offset.targetCount),
      suspended: (flags & DmFlag.DM_SUSPEND_FLAG) !== 0,
      readOnly: (flags & DmFlag.DM_READONLY_FLAG) !== 0,
      liveTable: (flags & DmFlag.DM_ACTIVE_PRESENT_FLAG) !== 0,
      inactiveTable: (flags & DmFlag.DM_INACTIVE_PRESENT_FLAG) !== 0,
      deferredRemove: (flags & DmFlag.DM_DEFERRED_REMOVE) !== 0,
    };
  };
}

/**
 * A copy of `dm.listDevices()` with the changes proposed for src/: the buffer
 * size that fitted last time is where the next call starts, and each record
 * is decoded once, from the position of the name's NUL, into its final object.
 */
function candidateList(libc, fd) {
  const request = dmRequest('DM_LIST_DEVICES');
  let size = LIST_INITIAL_BUFFER_SIZE;
  const decode = (buf, start, end) => {
    const entries = [];
    if (buf.readBigUInt64LE(start) === 0n) return entries;
    for (let at = start; ; ) {
      const next = buf.readUInt32LE(at + NameList.next);
      const nameStart = at + NameList.name;
      const nameEnd = buf.indexOf(0, nameStart);
      const name = buf.toString('utf8', nameStart, nameEnd);
      const entry = { name: name.includes('\\x') ? demangleName(name) : name, dev: buf.readBigUInt64LE(at + NameList.dev) };
      const extra = (nameEnd + 1 + 7) & ~7;
      const recordEnd = next === 0 ? end : at + next;
      if (extra + 8 <= recordEnd) {
        entry.eventNr = buf.readUInt32LE(extra);
        if (buf.readUInt32LE(extra + 4) & DM_NAME_LIST_FLAG_HAS_UUID) {
          const uuidEnd = buf.indexOf(0, extra + 8);
          entry.uuid = buf.toString('utf8', extra + 8, uuidEnd < 0 || uuidEnd > recordEnd ? recordEnd : uuidEnd);
        }
      }
      entries.push(entry);
      if (next === 0) return entries;
      at += next;
    }
  };
  return () => {
    for (;;) {
      const buf = Buffer.alloc(size);
      encodeHeader(buf, { version: [4, 0, 0], dataSize: size, flags: DmFlag.DM_UUID_FLAG });
      const result = libc.ioctlBuffer(fd, request, buf);
      if (result < 0) throw new Error(`DM_LIST_DEVICES failed: errno ${-result}`);
      const flags = buf.readUInt32LE(Offset.flags);
      if ((flags & DmFlag.DM_BUFFER_FULL_FLAG) !== 0) {
        size *= 2;
        continue;
      }
      return decode(buf, buf.readUInt32LE(Offset.dataStart), buf.readUInt32LE(Offset.dataSize));
    }
  };
}

/** Runs each measurement `ROUNDS` times, interleaved, and keeps each one's fastest round. */
function fastestOfRounds(measurements) {
  const best = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, measure] of Object.entries(measurements)) {
      const value = measure();
      best[name] = Math.min(best[name] ?? Infinity, value);
    }
  }
  return best;
}

/** Like fastestOfRounds, for measurements that return promises. */
async function fastestOfRoundsAsync(measurements) {
  const best = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, measure] of Object.entries(measurements)) {
      const value = await measure();
      best[name] = Math.min(best[name] ?? Infinity, value);
    }
  }
  return best;
}

/** Returns the mean time of `fn` over `iterations` calls, in nanoseconds. */
function perCall(iterations, fn) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return elapsed(start) / iterations;
}

/**
 * (a) DM_DEV_STATUS round trips: the library, a bare koffi call on a header
 * copied from a template and on one encoded each call, and C. Then the
 * library's own steps alone, to show where its time goes.
 */
function measureInfo(dm) {
  const libc = loadLibc();
  const fd = fs.openSync('/dev/mapper/control', 'r+');
  const buf = Buffer.alloc(DM_IOCTL_SIZE);
  const request = dmRequest('DM_DEV_STATUS');
  const encode = () => encodeHeader(buf, { version: [4, 0, 0], dataSize: DM_IOCTL_SIZE, name: INFO_DEVICE });
  encode();
  // The kernel overwrites data_size, flags and dev in the reply, so a header
  // encoded once is restored from this copy before each call.
  const template = Buffer.from(buf);
  const perRound = INFO_ITERATIONS / ROUNDS;

  const candidate = candidateInfo(libc, fd);
  const expected = JSON.stringify(dm.info(INFO_DEVICE));
  if (JSON.stringify(candidate(INFO_DEVICE)) !== expected) throw new Error(`candidate info differs from dm.info: ${expected}`);
  for (let i = 0; i < INFO_WARMUP; i++) dm.info(INFO_DEVICE);
  for (let i = 0; i < INFO_WARMUP; i++) candidate(INFO_DEVICE);
  for (let i = 0; i < INFO_WARMUP; i++) {
    template.copy(buf);
    libc.ioctlBuffer(fd, request, buf);
  }
  const best = fastestOfRounds({
    library: () => perCall(perRound, () => dm.info(INFO_DEVICE)),
    candidate: () => perCall(perRound, () => candidate(INFO_DEVICE)),
    templateKoffi: () =>
      perCall(perRound, () => {
        template.copy(buf);
        libc.ioctlBuffer(fd, request, buf);
      }),
    koffiWithEncode: () =>
      perCall(perRound, () => {
        encode();
        libc.ioctlBuffer(fd, request, buf);
      }),
    c: () => peer('info', INFO_DEVICE, perRound) / perRound,
  });
  fs.closeSync(fd);

  const reply = dm.info(INFO_DEVICE);
  const steps = fastestOfRounds({
    encodeHeader: () => perCall(perRound, encode),
    decodeHeader: () => perCall(perRound, () => decodeHeader(buf)),
    mangleName: () => perCall(perRound, () => mangleName(INFO_DEVICE)),
    // A candidate fast path: names made only of bytes udev passes need no mangling.
    mangleNameFastPath: () => perCall(perRound, () => (UNMANGLED_NAME.test(INFO_DEVICE) ? INFO_DEVICE : mangleName(INFO_DEVICE))),
    decodeDev: () => perCall(perRound, () => decodeDev(buf.readBigUInt64LE(DEV_OFFSET))),
    // A candidate without BigInt: glibc's gnu_dev_major/minor on the two 32-bit halves.
    decodeDevNumbers: () =>
      perCall(perRound, () => {
        const low = buf.readUInt32LE(DEV_OFFSET);
        const high = buf.readUInt32LE(DEV_OFFSET + 4);
        return { major: ((low >>> 8) & 0xfff) | (high & 0xfffff000), minor: (low & 0xff) | ((low >>> 12) & 0xfff00) };
      }),
    demangleName: () => perCall(perRound, () => demangleName(INFO_DEVICE)),
    checkName: () => perCall(perRound, () => checkName(INFO_DEVICE, 'DM_DEV_STATUS')),
    deviceInfo: () => perCall(perRound, () => deviceInfo(decodeHeader(buf), reply.name)),
  });
  progress(`info: library ${(best.library / 1000).toFixed(2)} us, koffi ${(best.templateKoffi / 1000).toFixed(2)} us, C ${(best.c / 1000).toFixed(2)} us a call`);
  return { iterations: INFO_ITERATIONS, rounds: ROUNDS, ...best, steps };
}

/** (b) create + load + resume + remove per device: the library, C, and one dmsetup process per step. */
async function measureCycle(dm) {
  const perRound = CYCLE_DEVICES / ROUNDS;
  let round = 0;
  const best = await fastestOfRoundsAsync({
    library: async () => {
      round++;
      const start = process.hrtime.bigint();
      for (let i = 0; i < perRound; i++) {
        const name = `${PREFIX}lib${round}-${i}`;
        dm.create(name);
        dm.load(name, ZERO_TABLE);
        await dm.resume(name);
        await dm.remove(name);
      }
      return elapsed(start) / perRound;
    },
    c: async () => peer('cycle', `${PREFIX}c${round}-`, perRound) / perRound,
  });
  const start = process.hrtime.bigint();
  for (let i = 0; i < CYCLE_DMSETUP_DEVICES; i++) {
    const name = `${PREFIX}dmsetup${i}`;
    dmsetup('create', name, '--notable');
    dmsetup('load', name, '--table', '0 8 zero');
    dmsetup('resume', name);
    dmsetup('remove', name);
  }
  const dmsetupPerDevice = elapsed(start) / CYCLE_DMSETUP_DEVICES;
  progress(`cycle: library ${(best.library / 1e6).toFixed(2)} ms, C ${(best.c / 1e6).toFixed(2)} ms, dmsetup ${(dmsetupPerDevice / 1e6).toFixed(2)} ms a device`);
  return { devices: CYCLE_DEVICES, rounds: ROUNDS, dmsetupDevices: CYCLE_DMSETUP_DEVICES, ...best, dmsetup: dmsetupPerDevice };
}

/** (c) DM_LIST_DEVICES with 1,000 / 5,000 / 10,000 devices: the library, C and dmsetup ls. */
function measureList(dm) {
  const libc = loadLibc();
  const fd = fs.openSync('/dev/mapper/control', 'r+');
  const candidate = candidateList(libc, fd);
  const results = [];
  let created = 0;
  for (const count of LIST_COUNTS) {
    peer('create', `${PREFIX}list`, created, count - created);
    created = count;
    const iterations = LIST_ITERATIONS[count] ?? 3;
    const listed = dm.listDevices().length;
    const withBigInt = (_key, value) => (typeof value === 'bigint' ? value.toString() : value);
    if (JSON.stringify(candidate(), withBigInt) !== JSON.stringify(dm.listDevices(), withBigInt)) {
      throw new Error('candidate list differs from dm.listDevices()');
    }
    const best = fastestOfRounds({
      library: () => perCall(iterations, () => dm.listDevices()),
      candidate: () => perCall(iterations, candidate),
      c: () => peer('list', iterations) / iterations,
    });
    const lsStart = process.hrtime.bigint();
    for (let i = 0; i < DMSETUP_LS_RUNS; i++) dmsetup('ls');
    const ls = elapsed(lsStart) / DMSETUP_LS_RUNS;
    progress(`list ${listed}: library ${(best.library / 1e6).toFixed(2)} ms, C ${(best.c / 1e6).toFixed(2)} ms, dmsetup ls ${(ls / 1e6).toFixed(2)} ms`);
    results.push({ count, devices: listed, iterations, rounds: ROUNDS, ...best, dmsetupLs: ls, dmsetupLsRuns: DMSETUP_LS_RUNS });
  }
  fs.closeSync(fd);
  return results;
}

async function removeBenchDevices(dm) {
  for (const entry of dm.listDevices()) {
    if (entry.name.startsWith(PREFIX)) await dm.remove(entry.name, { ignoreMissing: true });
  }
}

const dm = DeviceMapper.open();
try {
  await removeBenchDevices(dm);
  await dm.createDevice(INFO_DEVICE, { table: ZERO_TABLE });
  const info = measureInfo(dm);
  const cycle = await measureCycle(dm);
  const list = measureList(dm);
  const result = {
    kernel: os.release(),
    interface: dm.version().join('.'),
    node: process.version,
    cpus: os.cpus().length,
    info,
    cycle,
    list,
  };
  peer('remove-all');
  process.stdout.write(`bench-result: ${JSON.stringify(result)}\n`);
} finally {
  dm.close();
}
