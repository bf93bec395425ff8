// A fake device-mapper and loop driver behind the Libc interface. Unit tests
// pass it as `libc`, so the real client code runs without privileges and
// without a kernel. Replies follow drivers/md/dm-ioctl.c and
// drivers/block/loop.c (Linux 6.1) for the fields the tests read.
//
// The offsets, flag bits and request numbers below are written out from
// include/uapi/linux/dm-ioctl.h and loop.h instead of imported from src/, so a
// wrong value in src/ fails a test instead of agreeing with itself. Requests
// are decoded with the codecs in src/ioctl/codec.ts, which codec.test.ts
// checks against hand-written bytes.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { decodeHeader, decodeTargetMsg, type DmIoctlHeader, type TargetSpec } from '../../src/ioctl/codec.js';
import { DmError } from '../../src/ioctl/errors.js';
import type { Libc } from '../../src/ioctl/libc.js';

const { EBUSY, EFAULT, EINVAL, ENOTTY, ENXIO } = os.constants.errno;

/** `struct dm_ioctl` field offsets. */
const Header = {
  version: 0,
  dataSize: 12,
  dataStart: 16,
  targetCount: 20,
  openCount: 24,
  flags: 28,
  eventNr: 32,
  dev: 40,
  name: 48,
  uuid: 176,
} as const;
/** sizeof(struct dm_ioctl), which is also the data_start of every reply. */
const HEADER_SIZE = 312;
/** offsetof(struct dm_ioctl, data): the data_size of a reply without payload. */
const HEADER_USED = 305;
const NAME_LEN = 128;
const UUID_LEN = 129;
/** sizeof(struct dm_target_spec). */
const SPEC_SIZE = 40;
const TYPE_NAME_LEN = 16;

/** `struct dm_ioctl` flag bits. */
export const Flag = {
  READONLY: 1 << 0,
  SUSPEND: 1 << 1,
  PERSISTENT_DEV: 1 << 3,
  STATUS_TABLE: 1 << 4,
  ACTIVE_PRESENT: 1 << 5,
  INACTIVE_PRESENT: 1 << 6,
  BUFFER_FULL: 1 << 8,
  SKIP_LOCKFS: 1 << 10,
  NOFLUSH: 1 << 11,
  QUERY_INACTIVE_TABLE: 1 << 12,
  UEVENT_GENERATED: 1 << 13,
  UUID: 1 << 14,
  SECURE_DATA: 1 << 15,
  DATA_OUT: 1 << 16,
  DEFERRED_REMOVE: 1 << 17,
} as const;

/** Device-mapper command names, indexed by ioctl number (`_IOC_NR`). */
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
] as const;
export type FakeDmCommand = (typeof DM_COMMANDS)[number];

/** Loop ioctl request numbers. */
export const LoopRequest = {
  LOOP_SET_FD: 0x4c00,
  LOOP_CLR_FD: 0x4c01,
  LOOP_SET_STATUS64: 0x4c04,
  LOOP_SET_CAPACITY: 0x4c07,
  LOOP_CONFIGURE: 0x4c0a,
  LOOP_CTL_GET_FREE: 0x4c82,
} as const;
export type FakeLoopCommand = keyof typeof LoopRequest;

/** Block major number the fake gives every dm device (real kernels pick one at boot). */
export const FAKE_DM_MAJOR = 253;

export interface FakeTable {
  targets: TargetSpec[];
  readOnly: boolean;
}

export interface FakeDevice {
  name: string;
  /** Empty when the device has no uuid. */
  uuid: string;
  minor: number;
  openCount: number;
  eventNr: number;
  suspended: boolean;
  deferredRemove: boolean;
  live?: FakeTable;
  inactive?: FakeTable;
  /** Line per live target that DM_TABLE_STATUS returns without DM_STATUS_TABLE_FLAG. */
  statusLines: string[];
}

export interface AddDeviceOptions {
  uuid?: string;
  /** Live table, absent for a device without one. */
  table?: TargetSpec[];
  readOnly?: boolean;
  openCount?: number;
  eventNr?: number;
  statusLines?: string[];
}

/** One device-mapper ioctl, as the client sent it and the fake replied to it. */
export interface DmCall {
  command: FakeDmCommand;
  request: number;
  /** The header as the client sent it. */
  header: DmIoctlHeader;
  /** Copy of the sent buffer up to its data_size. */
  bytes: Buffer;
  /** Copy of the sent bytes from data_start to data_size. */
  payload: Buffer;
  /** Length and byteOffset of the Buffer handed to ioctl. */
  bufferLength: number;
  byteOffset: number;
  /** The header as the fake left it in the buffer. */
  reply: DmIoctlHeader;
  /** 0 or -errno. */
  result: number;
}

/** One loop ioctl. `path` is the node the descriptor was opened on. */
export interface LoopCall {
  command: FakeLoopCommand;
  path: string;
  /** Copy of the struct passed by pointer (loop_config or loop_info64). */
  bytes?: Buffer;
  /** The backing file and its open mode, for LOOP_CONFIGURE and LOOP_SET_FD. */
  backing?: { path: string; accessMode: 'O_RDONLY' | 'O_WRONLY' | 'O_RDWR' };
  result: number;
}

export interface MknodCall {
  path: string;
  mode: number;
  dev: bigint;
  result: number;
}

export interface AttachedLoop {
  backingFile: string;
  fileName: string;
  flags: number;
  /** True when another process attached it (see `racesForLoop`). */
  byOtherProcess: boolean;
}

/** Reply to DM_TARGET_MSG: -errno, a text the target returns, or undefined for none. */
export type MessageHandler = (device: FakeDevice, sector: bigint, message: string) => number | string | undefined;

interface DmRequest {
  command: FakeDmCommand;
  header: DmIoctlHeader;
  buf: Buffer;
  /** Flags after validate_params(), written back on success. */
  flags: number;
  /** data_size of the reply, written back on success. */
  dataSize: number;
}

/** The Libc of a kernel that exists only in this process. */
export class FakeKernel implements Libc {
  /** Interface version the kernel writes into every reply. */
  version: [number, number, number];
  readonly devices = new Map<string, FakeDevice>();
  readonly dmCalls: DmCall[] = [];
  readonly loopCalls: LoopCall[] = [];
  readonly mknodCalls: MknodCall[] = [];
  /** Sets DM_BUFFER_FULL_FLAG on every reply that carries a payload, whatever the buffer size. */
  alwaysBufferFull = false;
  onMessage: MessageHandler = () => undefined;
  /** Target types the kernel has loaded, as DM_LIST_VERSIONS reports them. */
  targetTypes: { name: string; version: [number, number, number] }[] = [
    { name: 'linear', version: [1, 4, 0] },
    { name: 'zero', version: [1, 2, 0] },
    { name: 'error', version: [1, 6, 0] },
    { name: 'thin-pool', version: [1, 23, 0] },
    { name: 'thin', version: [1, 23, 0] },
  ];
  /** Attached loop devices by number. */
  readonly loops = new Map<number, AttachedLoop>();
  /** Returns true for a loop number that another process attaches between LOOP_CTL_GET_FREE and the attach. */
  racesForLoop: (number: number) => boolean = () => false;
  /** False models a kernel before 5.8, which rejects LOOP_CONFIGURE with EINVAL. */
  loopConfigureSupported = true;
  readonly #failures = new Map<string, { errno: number; remaining: number }[]>();

  constructor(options: { version?: [number, number, number] } = {}) {
    this.version = options.version ?? [4, 47, 0];
  }

  /** Adds a device directly, as if another program had created it. */
  addDevice(name: string, options: AddDeviceOptions = {}): FakeDevice {
    const device: FakeDevice = {
      name,
      uuid: options.uuid ?? '',
      minor: this.#freeMinor(),
      openCount: options.openCount ?? 0,
      eventNr: options.eventNr ?? 0,
      suspended: false,
      deferredRemove: false,
      live: options.table ? { targets: options.table, readOnly: options.readOnly ?? false } : undefined,
      statusLines: options.statusLines ?? [],
    };
    this.devices.set(name, device);
    return device;
  }

  /**
   * Makes the next `times` calls of `command` fail with `errno`. `command` is
   * a dm command name, a loop request name or `mknod`. Infinity fails forever.
   */
  failNext(command: FakeDmCommand | FakeLoopCommand | 'mknod', errno: number, times = 1): void {
    const queue = this.#failures.get(command) ?? [];
    queue.push({ errno, remaining: times });
    this.#failures.set(command, queue);
  }

  /** Returns the recorded calls of one device-mapper command. */
  calls(command: FakeDmCommand): DmCall[] {
    return this.dmCalls.filter((call) => call.command === command);
  }

  /** Returns the recorded calls of one loop request. */
  loopCallsOf(command: FakeLoopCommand): LoopCall[] {
    return this.loopCalls.filter((call) => call.command === command);
  }

  ioctlBuffer(fd: number, request: number, buf: Buffer): number {
    if (((request >>> 8) & 0xff) === 0xfd) return this.#deviceMapper(request, buf);
    return this.#loop(fd, request, buf, undefined);
  }

  ioctlInt(fd: number, request: number, arg: number): number {
    return this.#loop(fd, request, undefined, arg);
  }

  /** Creates a regular file in place of the node and records the call. */
  mknod(nodePath: string, mode: number, dev: bigint): number {
    let result = this.#takeFailure('mknod') ?? 0;
    if (result === 0) {
      try {
        fs.writeFileSync(nodePath, `fake node mode 0o${mode.toString(8)} dev ${dev}\n`, { flag: 'wx' });
      } catch (error) {
        // Node's fs errors carry errno as a negative number.
        result = (error as NodeJS.ErrnoException).errno ?? -EINVAL;
      }
    }
    this.mknodCalls.push({ path: nodePath, mode, dev, result });
    return result;
  }

  /** Runs the ioctl at once, because commands that block (DM_DEV_WAIT) are not modelled. */
  async ioctlBufferAsync(fd: number, request: number, buf: Buffer): Promise<number> {
    return this.ioctlBuffer(fd, request, buf);
  }

  async pollAsync(): Promise<number> {
    throw new Error('The fake kernel does not model poll()');
  }

  mount(): number {
    throw new Error('The fake kernel does not model mount()');
  }

  umount2(): number {
    throw new Error('The fake kernel does not model umount2()');
  }

  // ---- device-mapper ----

  #deviceMapper(request: number, buf: Buffer): number {
    const command = DM_COMMANDS[request & 0xff];
    // The kernel checks only the type byte, but the fake also checks direction
    // and size, so a wrong request number fails the test at once.
    if (command === undefined || request >>> 30 !== 3 || ((request >>> 16) & 0x3fff) !== HEADER_SIZE) {
      throw new Error(`Fake kernel: request 0x${request.toString(16)} is not _IOWR(0xfd, nr, struct dm_ioctl)`);
    }
    const header = decodeHeader(buf);
    const sent = Buffer.from(buf.subarray(0, Math.min(header.dataSize, buf.length)));
    const result = this.#runCommand(command, header, buf);
    this.dmCalls.push({
      command,
      request,
      header,
      bytes: sent,
      payload: header.dataStart < sent.length ? sent.subarray(header.dataStart) : Buffer.alloc(0),
      bufferLength: buf.length,
      byteOffset: buf.byteOffset,
      reply: decodeHeader(buf),
      result,
    });
    return result;
  }

  #runCommand(command: FakeDmCommand, header: DmIoctlHeader, buf: Buffer): number {
    // check_version(): the kernel's version goes back even when the request's is rejected.
    buf.writeUInt32LE(this.version[0], Header.version);
    buf.writeUInt32LE(this.version[1], Header.version + 4);
    buf.writeUInt32LE(this.version[2], Header.version + 8);
    if (header.version[0] !== this.version[0] || header.version[1] > this.version[1]) return -EINVAL;
    const failure = this.#takeFailure(command);
    if (failure !== undefined) return failure;
    if (command === 'DM_VERSION') return 0;
    if (header.dataSize < HEADER_USED) return -EINVAL;
    if (header.dataSize > buf.length) return -EFAULT;

    // validate_params()
    const flags = header.flags & ~(Flag.BUFFER_FULL | Flag.UEVENT_GENERATED | Flag.SECURE_DATA | Flag.DATA_OUT);
    const ignoresIds = command === 'DM_LIST_DEVICES' || command === 'DM_LIST_VERSIONS';
    if (command === 'DM_DEV_CREATE' && header.name === '') return -EINVAL;
    if (!ignoresIds && command !== 'DM_DEV_CREATE' && header.name !== '' && header.uuid !== '') return -EINVAL;

    const req: DmRequest = { command, header, buf, flags, dataSize: HEADER_USED };
    const result = this.#dispatch(req);
    // On failure the kernel copies nothing back but the version.
    if (result === 0) {
      buf.writeUInt32LE(req.flags >>> 0, Header.flags);
      buf.writeUInt32LE(req.dataSize, Header.dataSize);
    }
    return result;
  }

  #dispatch(req: DmRequest): number {
    switch (req.command) {
      case 'DM_LIST_DEVICES':
        return this.#listDevices(req);
      case 'DM_LIST_VERSIONS':
        return this.#listVersions(req);
      case 'DM_DEV_CREATE':
        return this.#create(req);
      case 'DM_DEV_RENAME':
        return this.#rename(req);
      default:
        break;
    }
    const device = this.#find(req.header);
    if (!device) return -ENXIO;
    switch (req.command) {
      case 'DM_DEV_REMOVE':
        return this.#remove(req, device);
      case 'DM_DEV_SUSPEND':
        return this.#suspendOrResume(req, device);
      case 'DM_DEV_STATUS':
        this.#writeIds(req, device);
        this.#writeStatus(req, device);
        return 0;
      case 'DM_TABLE_LOAD':
        return this.#load(req, device);
      case 'DM_TABLE_CLEAR':
        this.#writeIds(req, device);
        device.inactive = undefined;
        req.flags &= ~Flag.INACTIVE_PRESENT;
        this.#writeStatus(req, device);
        return 0;
      case 'DM_TABLE_STATUS':
        return this.#tableStatus(req, device);
      case 'DM_TABLE_DEPS':
        return this.#tableDeps(req, device);
      case 'DM_TARGET_MSG':
        return this.#targetMessage(req, device);
      default:
        throw new Error(`The fake kernel does not model ${req.command}`);
    }
  }

  /** __find_device_hash_cell(): by uuid, else by name. Lookups by dev are not modelled. */
  #find(header: DmIoctlHeader): FakeDevice | undefined {
    if (header.uuid !== '') {
      if (header.name !== '' || header.dev !== 0n) return undefined;
      return [...this.devices.values()].find((device) => device.uuid === header.uuid);
    }
    if (header.name !== '' && header.dev === 0n) return this.devices.get(header.name);
    // __find_device_hash_cell(): with neither name nor uuid, the device number decides.
    if (header.name === '' && header.dev !== 0n) {
      const minor = minorOf(header.dev);
      return [...this.devices.values()].find((device) => device.minor === minor);
    }
    return undefined;
  }

  /** The name, uuid and INACTIVE_PRESENT bit that a lookup writes into the reply. */
  #writeIds(req: DmRequest, device: FakeDevice): void {
    putString(req.buf, Header.name, NAME_LEN, device.name);
    putString(req.buf, Header.uuid, UUID_LEN, device.uuid);
    if (device.inactive) req.flags |= Flag.INACTIVE_PRESENT;
    else req.flags &= ~Flag.INACTIVE_PRESENT;
  }

  /** __dev_status(). */
  #writeStatus(req: DmRequest, device: FakeDevice): void {
    let flags = req.flags & ~(Flag.SUSPEND | Flag.READONLY | Flag.ACTIVE_PRESENT);
    if (device.suspended) flags |= Flag.SUSPEND;
    if (device.deferredRemove) flags |= Flag.DEFERRED_REMOVE;
    let targetCount = 0;
    const queryInactive = (flags & Flag.QUERY_INACTIVE_TABLE) !== 0;
    if (device.live) {
      if (!queryInactive) {
        if (device.live.readOnly) flags |= Flag.READONLY;
        targetCount = device.live.targets.length;
      }
      flags |= Flag.ACTIVE_PRESENT;
    }
    if (queryInactive && device.inactive) {
      if (device.inactive.readOnly) flags |= Flag.READONLY;
      targetCount = device.inactive.targets.length;
    }
    req.flags = flags;
    const { buf } = req;
    buf.writeBigUInt64LE(encodeDevNumber(FAKE_DM_MAJOR, device.minor), Header.dev);
    buf.writeInt32LE(device.openCount, Header.openCount);
    buf.writeUInt32LE(device.eventNr, Header.eventNr);
    buf.writeUInt32LE(targetCount, Header.targetCount);
  }

  #create(req: DmRequest): number {
    const { name, uuid, dev } = req.header;
    if (!validName(name)) return -EINVAL;
    const taken = [...this.devices.values()];
    if (this.devices.has(name) || (uuid !== '' && taken.some((device) => device.uuid === uuid))) return -EBUSY;
    let minor = this.#freeMinor();
    if (req.flags & Flag.PERSISTENT_DEV) {
      minor = minorOf(dev);
      if (taken.some((device) => device.minor === minor)) return -EBUSY;
    }
    const device = this.addDevice(name, { uuid });
    device.minor = minor;
    req.flags &= ~Flag.INACTIVE_PRESENT;
    this.#writeStatus(req, device);
    return 0;
  }

  #remove(req: DmRequest, device: FakeDevice): number {
    if (device.openCount > 0) {
      if ((req.flags & Flag.DEFERRED_REMOVE) === 0) return -EBUSY;
      device.deferredRemove = true;
      this.#writeIds(req, device);
      return 0;
    }
    this.devices.delete(device.name);
    this.#writeIds(req, device);
    req.flags &= ~Flag.DEFERRED_REMOVE;
    return 0;
  }

  /** dev_rename(): the old device is looked up by name only, never by uuid. */
  #rename(req: DmRequest): number {
    const { header, buf } = req;
    if (header.dataStart < HEADER_USED || header.dataStart >= header.dataSize) return -EINVAL;
    const end = buf.indexOf(0, header.dataStart);
    if (end < 0 || end >= header.dataSize) return -EINVAL;
    const newName = buf.toString('utf8', header.dataStart, end);
    if ((header.flags & Flag.UUID) !== 0) {
      // With DM_UUID_FLAG the payload is a uuid for a device that has none yet.
      const target = this.devices.get(header.name);
      if (!target) return -ENXIO;
      if (target.uuid) return -EINVAL;
      target.uuid = newName;
      target.eventNr++;
      this.#writeIds(req, target);
      this.#writeStatus(req, target);
      return 0;
    }
    if (newName === '' || end - header.dataStart > NAME_LEN - 1 || !validName(newName)) return -EINVAL;
    if (this.devices.has(newName)) return -EBUSY;
    const device = this.devices.get(header.name);
    if (!device) return -ENXIO;
    this.devices.delete(device.name);
    device.name = newName;
    this.devices.set(newName, device);
    device.eventNr++;
    // __dev_status() leaves the old name in the reply.
    this.#writeStatus(req, device);
    return 0;
  }

  #suspendOrResume(req: DmRequest, device: FakeDevice): number {
    this.#writeIds(req, device);
    if (req.flags & Flag.SUSPEND) {
      device.suspended = true;
    } else {
      if (device.inactive) {
        device.live = device.inactive;
        device.inactive = undefined;
      }
      req.flags &= ~Flag.INACTIVE_PRESENT;
      device.suspended = false;
    }
    this.#writeStatus(req, device);
    return 0;
  }

  /** table_load(): each spec's `next` counts from the previous spec. */
  #load(req: DmRequest, device: FakeDevice): number {
    const { header, buf } = req;
    const end = header.dataSize;
    const targets: TargetSpec[] = [];
    let at = header.dataStart;
    let next = 0;
    let expectedStart = 0n;
    if (header.targetCount === 0) return -EINVAL;
    for (let i = 0; i < header.targetCount; i++) {
      if (i > 0 && next < SPEC_SIZE) return -EINVAL;
      at += next;
      if (at + SPEC_SIZE > end) return -EINVAL;
      const paramsEnd = buf.indexOf(0, at + SPEC_SIZE);
      if (paramsEnd < 0 || paramsEnd >= end) return -EINVAL;
      const type = readString(buf, at + 24, TYPE_NAME_LEN);
      const start = buf.readBigUInt64LE(at);
      const length = buf.readBigUInt64LE(at + 8);
      if (!this.targetTypes.some((known) => known.name === type)) return -EINVAL;
      if (start !== expectedStart || length === 0n) return -EINVAL;
      // dm_split_args() drops the backslash of every escaped character.
      const params = buf.toString('utf8', at + SPEC_SIZE, paramsEnd).replace(/\\(.)/g, '$1');
      targets.push({ start, length, type, params });
      expectedStart += length;
      next = buf.readUInt32LE(at + 20);
    }
    this.#writeIds(req, device);
    device.inactive = { targets, readOnly: (req.flags & Flag.READONLY) !== 0 };
    req.flags |= Flag.INACTIVE_PRESENT;
    this.#writeStatus(req, device);
    return 0;
  }

  /** table_status() and retrieve_status(): `next` counts from the data area start. */
  #tableStatus(req: DmRequest, device: FakeDevice): number {
    this.#writeIds(req, device);
    this.#writeStatus(req, device);
    const table = req.flags & Flag.QUERY_INACTIVE_TABLE ? device.inactive : device.live;
    if (!table) return 0;
    const { buf } = req;
    const len = req.header.dataSize - HEADER_SIZE;
    let out = 0;
    let used = 0;
    for (const [i, target] of table.targets.entries()) {
      if (this.alwaysBufferFull || len - out <= SPEC_SIZE) {
        req.flags |= Flag.BUFFER_FULL;
        break;
      }
      const spec = HEADER_SIZE + out;
      buf.fill(0, spec, spec + SPEC_SIZE);
      buf.writeBigUInt64LE(target.start, spec);
      buf.writeBigUInt64LE(target.length, spec + 8);
      buf.write(target.type, spec + 24, 'utf8');
      out += SPEC_SIZE;
      const text = req.flags & Flag.STATUS_TABLE ? target.params : (device.statusLines[i] ?? '');
      const bytes = Buffer.from(`${text}\0`, 'utf8');
      if (bytes.length >= len - out) {
        req.flags |= Flag.BUFFER_FULL;
        break;
      }
      bytes.copy(buf, HEADER_SIZE + out);
      out += bytes.length;
      used = HEADER_SIZE + out;
      out = align8(out);
      buf.writeUInt32LE(out, spec + 20);
    }
    if (used) req.dataSize = used;
    buf.writeUInt32LE(HEADER_SIZE, Header.dataStart);
    buf.writeUInt32LE(table.targets.length, Header.targetCount);
    return 0;
  }

  /** table_deps(): the fake takes every `major:minor` word of the live table as a dependency. */
  #tableDeps(req: DmRequest, device: FakeDevice): number {
    this.#writeIds(req, device);
    this.#writeStatus(req, device);
    if (!device.live) return 0;
    const words = device.live.targets.flatMap((target) => target.params.split(/\s+/));
    const devs = [...new Set(words.filter((word) => /^\d+:\d+$/.test(word)))];
    const needed = 8 + 8 * devs.length;
    const { buf } = req;
    buf.writeUInt32LE(HEADER_SIZE, Header.dataStart);
    if (this.alwaysBufferFull || req.header.dataSize - HEADER_SIZE < needed) {
      req.flags |= Flag.BUFFER_FULL;
      return 0;
    }
    buf.writeUInt32LE(devs.length, HEADER_SIZE);
    buf.writeUInt32LE(0, HEADER_SIZE + 4);
    for (const [i, word] of devs.entries()) {
      const [major, minor] = word.split(':').map(Number);
      buf.writeBigUInt64LE(encodeDevNumber(major, minor), HEADER_SIZE + 8 + 8 * i);
    }
    req.dataSize = HEADER_SIZE + needed;
    return 0;
  }

  /**
   * list_devices(): records sorted by name. From interface 4.37 on, event_nr
   * and a flags word follow each name. From 4.46 on, the uuid follows them
   * when the request carries DM_UUID_FLAG.
   */
  #listDevices(req: DmRequest): number {
    const withEventNr = this.version[1] >= 37;
    const withUuid = this.version[1] >= 46 && (req.flags & Flag.UUID) !== 0;
    const devices = [...this.devices.values()].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    const records = devices.map((device) => nameRecord(device, withEventNr, withUuid));
    const needed = records.reduce((sum, record) => sum + record.length, 0);
    const { buf } = req;
    buf.writeUInt32LE(HEADER_SIZE, Header.dataStart);
    const len = req.header.dataSize - HEADER_SIZE;
    if (this.alwaysBufferFull || len < needed || len < 8) {
      req.flags |= Flag.BUFFER_FULL;
      return 0;
    }
    let at = HEADER_SIZE;
    for (const [i, record] of records.entries()) {
      if (i < records.length - 1) record.writeUInt32LE(record.length, 8);
      record.copy(buf, at);
      at += record.length;
    }
    req.dataSize = HEADER_SIZE + needed;
    return 0;
  }

  /** __list_versions(): `needed` over-counts by 7 bytes a record, as the kernel's does. */
  #listVersions(req: DmRequest): number {
    const needed = this.targetTypes.reduce((sum, type) => sum + 16 + Buffer.byteLength(type.name) + 1 + 7, 0);
    const { buf } = req;
    buf.writeUInt32LE(HEADER_SIZE, Header.dataStart);
    if (this.alwaysBufferFull || req.header.dataSize - HEADER_SIZE < needed) {
      req.flags |= Flag.BUFFER_FULL;
      return 0;
    }
    let at = HEADER_SIZE;
    for (const [i, type] of this.targetTypes.entries()) {
      const size = align8(16 + Buffer.byteLength(type.name) + 1);
      buf.fill(0, at, at + size);
      buf.writeUInt32LE(i < this.targetTypes.length - 1 ? size : 0, at);
      type.version.forEach((part, j) => buf.writeUInt32LE(part, at + 4 + 4 * j));
      buf.write(type.name, at + 16, 'utf8');
      at += size;
    }
    req.dataSize = HEADER_SIZE + needed;
    return 0;
  }

  /**
   * target_message(). NOTE: the kernel returns 2, not an errno, for a device
   * without a live table. The fake returns EINVAL instead.
   */
  #targetMessage(req: DmRequest, device: FakeDevice): number {
    const { header, buf } = req;
    if (header.dataStart < HEADER_USED) return -EINVAL;
    const end = buf.indexOf(0, header.dataStart + 8);
    if (end < 0 || end >= header.dataSize) return -EINVAL;
    const { sector, message } = decodeTargetMsg(buf, header.dataStart, header.dataSize);
    if (message.trim() === '') return -EINVAL;
    const targets = device.live?.targets ?? [];
    if (!targets.some((target) => sector >= target.start && sector < target.start + target.length)) return -EINVAL;
    const reply = this.onMessage(device, sector, message);
    if (typeof reply === 'number' && reply < 0) return reply;
    this.#writeIds(req, device);
    this.#writeStatus(req, device);
    if (typeof reply !== 'string') return 0;
    buf.writeUInt32LE(HEADER_SIZE, Header.dataStart);
    req.flags |= Flag.DATA_OUT;
    const bytes = Buffer.from(`${reply}\0`, 'utf8');
    if (this.alwaysBufferFull || bytes.length >= header.dataSize - HEADER_SIZE) {
      req.flags |= Flag.BUFFER_FULL;
      return 0;
    }
    bytes.copy(buf, HEADER_SIZE);
    req.dataSize = HEADER_SIZE + bytes.length;
    return 0;
  }

  #freeMinor(): number {
    const used = new Set([...this.devices.values()].map((device) => device.minor));
    let minor = 0;
    while (used.has(minor)) minor++;
    return minor;
  }

  #takeFailure(command: string): number | undefined {
    const queue = this.#failures.get(command);
    const first = queue?.[0];
    if (!queue || !first) return undefined;
    first.remaining--;
    if (first.remaining <= 0) queue.shift();
    return -first.errno;
  }

  // ---- loop ----

  #loop(fd: number, request: number, buf: Buffer | undefined, arg: number | undefined): number {
    const command = (Object.keys(LoopRequest) as FakeLoopCommand[]).find((name) => LoopRequest[name] === request);
    if (command === undefined) throw new Error(`The fake kernel does not model ioctl request 0x${request.toString(16)}`);
    const nodePath = fs.readlinkSync(`/proc/self/fd/${fd}`);
    const call: LoopCall = { command, path: nodePath, result: 0 };
    if (buf) call.bytes = Buffer.from(buf);
    this.loopCalls.push(call);
    call.result = this.#takeFailure(command) ?? this.#runLoop(command, nodePath, call, buf, arg);
    return call.result;
  }

  #runLoop(command: FakeLoopCommand, nodePath: string, call: LoopCall, buf: Buffer | undefined, arg: number | undefined): number {
    if (command === 'LOOP_CTL_GET_FREE') {
      if (path.basename(nodePath) !== 'loop-control') return -ENOTTY;
      let number = 0;
      while (this.loops.has(number)) number++;
      return number;
    }
    const match = /^loop(\d+)$/.exec(path.basename(nodePath));
    if (!match) return -ENOTTY;
    const number = Number(match[1]);
    switch (command) {
      case 'LOOP_CONFIGURE': {
        if (!this.loopConfigureSupported) return -EINVAL;
        const config = buf as Buffer;
        call.backing = describeBacking(config.readUInt32LE(0));
        // struct loop_config: fd, block_size, then loop_info64 at 8.
        return this.#attach(number, call.backing.path, config, 8);
      }
      case 'LOOP_SET_FD':
        call.backing = describeBacking(arg as number);
        return this.#attach(number, call.backing.path, undefined, 0);
      case 'LOOP_SET_STATUS64': {
        const loop = this.loops.get(number);
        if (!loop || loop.byOtherProcess) return -ENXIO;
        readLoopInfo(loop, buf as Buffer, 0);
        return 0;
      }
      case 'LOOP_CLR_FD':
        if (!this.loops.delete(number)) return -ENXIO;
        return 0;
      case 'LOOP_SET_CAPACITY':
        return this.loops.has(number) ? 0 : -ENXIO;
    }
  }

  #attach(number: number, backingFile: string, info: Buffer | undefined, infoOffset: number): number {
    if (this.loops.has(number)) return -EBUSY;
    if (this.racesForLoop(number)) {
      this.loops.set(number, { backingFile: '', fileName: '', flags: 0, byOtherProcess: true });
      return -EBUSY;
    }
    const loop: AttachedLoop = { backingFile, fileName: '', flags: 0, byOtherProcess: false };
    if (info) readLoopInfo(loop, info, infoOffset);
    this.loops.set(number, loop);
    return 0;
  }
}

/** `struct dm_name_list` record for one device, with `next` left at 0. */
function nameRecord(device: FakeDevice, withEventNr: boolean, withUuid: boolean): Buffer {
  const name = Buffer.from(`${device.name}\0`, 'utf8');
  const extra = align8(12 + name.length);
  const uuid = withUuid && device.uuid !== '' ? Buffer.from(`${device.uuid}\0`, 'utf8') : undefined;
  const size = extra + (withEventNr ? 8 : 0) + (uuid ? align8(uuid.length) : 0);
  const record = Buffer.alloc(size);
  record.writeBigUInt64LE(encodeDevNumber(FAKE_DM_MAJOR, device.minor), 0);
  name.copy(record, 12);
  if (withEventNr) {
    record.writeUInt32LE(device.eventNr, extra);
    // DM_NAME_LIST_FLAG_HAS_UUID = 1, DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID = 2.
    if (withUuid) record.writeUInt32LE(uuid ? 1 : 2, extra + 4);
  }
  uuid?.copy(record, extra + 8);
  return record;
}

/** Copies lo_offset, lo_sizelimit, lo_flags and lo_file_name of a `struct loop_info64` at `offset`. */
function readLoopInfo(loop: AttachedLoop, buf: Buffer, offset: number): void {
  loop.flags = buf.readUInt32LE(offset + 52);
  loop.fileName = readString(buf, offset + 56, 64);
}

function describeBacking(fd: number): NonNullable<LoopCall['backing']> {
  const fdinfo = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const flags = parseInt(/^flags:\s*([0-7]+)$/m.exec(fdinfo)?.[1] ?? '0', 8);
  const modes = ['O_RDONLY', 'O_WRONLY', 'O_RDWR'] as const;
  return { path: fs.readlinkSync(`/proc/self/fd/${fd}`), accessMode: modes[flags & 3] };
}

/** check_name() in dm-ioctl.c. */
function validName(name: string): boolean {
  return !name.includes('/') && name !== 'control' && name !== '.' && name !== '..';
}

/** new_encode_dev() from include/linux/kdev_t.h, which huge_encode_dev() uses. */
export function encodeDevNumber(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return (mi & 0xffn) | (ma << 8n) | ((mi & ~0xffn) << 12n);
}

/** MINOR(huge_decode_dev(dev)). */
function minorOf(dev: bigint): number {
  const low = dev & 0xffffffffn;
  return Number((low & 0xffn) | ((low >> 12n) & 0xfff00n));
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

function putString(buf: Buffer, offset: number, size: number, text: string): void {
  buf.fill(0, offset, offset + size);
  buf.write(text, offset, size - 1, 'utf8');
}

function readString(buf: Buffer, offset: number, size: number): string {
  const end = buf.indexOf(0, offset);
  return buf.toString('utf8', offset, end < 0 || end > offset + size ? offset + size : end);
}

// ---- helpers for the tests ----

/** Runs `action` and returns the DmError it throws. Throws when it throws nothing or another type. */
export function catchDmError(action: () => unknown): DmError {
  try {
    action();
  } catch (error) {
    if (error instanceof DmError) return error;
    throw new Error(`Expected a DmError, got ${String(error)}`, { cause: error });
  }
  throw new Error('Expected a DmError, but nothing was thrown');
}

/** Awaits `promise` and returns the DmError it rejects with. */
export async function rejectionOf(promise: Promise<unknown>): Promise<DmError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DmError) return error;
    throw new Error(`Expected a DmError, got ${String(error)}`, { cause: error });
  }
  throw new Error('Expected a DmError, but the promise resolved');
}

/** Creates a fresh folder under the OS temp folder. */
export function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `dm-ioctl-unit-${prefix}-`));
}

/** Number of file descriptors this process has open. */
export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}
