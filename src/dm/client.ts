// The device-mapper client: one method per ioctl command on
// /dev/mapper/control. Commands the kernel completes at once are synchronous;
// the ones that wait (for udev, or between retries) return promises.

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { debuglog } from 'node:util';

import {
  decodeDev,
  decodeHeader,
  decodeNameList,
  decodeTargetDeps,
  decodeTargetSpecs,
  decodeTargetVersions,
  encodeHeader,
  encodeTargetMsg,
  encodeTargetSpecs,
  readCString,
  targetMsgSize,
  targetSpecSize,
  type DevNumber,
  type DmIoctlHeader,
  type NameListEntry,
  type TargetReply,
  type TargetVersion,
  type Version,
} from '../ioctl/codec.js';
import {
  DM_COMMAND_MIN_VERSION,
  DM_CONTROL_MAJOR,
  DM_CONTROL_MINOR,
  DM_CONTROL_PATH,
  DM_IOCTL_SIZE,
  DM_NAME_LIST_EVENT_NR_MINOR,
  DM_NAME_LIST_UUID_MINOR,
  DM_VERSION_MAJOR,
  DmFlag,
  dmRequest,
  flagNames,
  type DmCommandName,
} from '../ioctl/constants.js';
import { DmError, DmErrorCode, systemError } from '../ioctl/errors.js';
import { libc as loadLibc, S_IFCHR, type Libc } from '../ioctl/libc.js';
import { checkName, checkUuid } from './names.js';
import type { DeviceId, DeviceInfo, MissingDevice, NodeOperation, NodeSync, NodeSyncOutcome, TableTarget } from './types.js';

const debug = debuglog('dm');

/** First buffer size for commands whose reply can grow (libdm starts at 16 KiB too). */
export const DEFAULT_INITIAL_BUFFER_SIZE = 16 * 1024;
/** Largest buffer the client grows to on DM_BUFFER_FULL_FLAG before giving up. */
export const DEFAULT_MAX_BUFFER_SIZE = 256 * 1024 * 1024;
/** Upper bound of `data_size`, a __u32. */
const DATA_SIZE_LIMIT = 0xffffffff;

/** libdm's DM_IOCTL_RETRIES and DM_RETRY_USLEEP_DELAY: 25 tries 200 ms apart. */
export const DEFAULT_REMOVE_RETRIES = 25;
export const DEFAULT_REMOVE_RETRY_DELAY_MS = 200;

export interface DeviceMapperOptions {
  /** Path of the control node; default /dev/mapper/control. */
  controlPath?: string;
  /** The system-call binding; tests pass a fake kernel here. */
  libc?: Libc;
  /** Keeps /dev/mapper nodes in step; omit to leave nodes alone. */
  nodeSync?: NodeSync;
  initialBufferSize?: number;
  maxBufferSize?: number;
}

export interface CreateOptions {
  uuid?: string;
  /** Send DM_READONLY_FLAG, so a table loaded later is read-only too. */
  readOnly?: boolean;
  /** Ask for this minor number (DM_PERSISTENT_DEV_FLAG). */
  minor?: number;
}

export interface LoadOptions {
  readOnly?: boolean;
  /** DM_SECURE_DATA_FLAG: the kernel wipes the buffer (for crypt keys). */
  secure?: boolean;
}

export interface SuspendOptions {
  /** DM_NOFLUSH_FLAG: keep queued I/O instead of flushing it. */
  noflush?: boolean;
  /** DM_SKIP_LOCKFS_FLAG: do not freeze a mounted filesystem first. */
  nolockfs?: boolean;
}

export interface RemoveOptions {
  /** Resolve when the device does not exist instead of rejecting with ENXIO. */
  ignoreMissing?: boolean;
  /** DM_DEFERRED_REMOVE: remove when the last opener closes the device. */
  deferred?: boolean;
  /** Retry EBUSY: true for libdm's 25 tries 200 ms apart, or a count. */
  retry?: boolean | number;
  retryDelayMs?: number;
}

export interface StatusOptions {
  /** DM_QUERY_INACTIVE_TABLE_FLAG: report the loaded, not yet live, table. */
  inactive?: boolean;
  /** DM_NOFLUSH_FLAG: do not flush before reporting (thin-pool usage). */
  noflush?: boolean;
}

export interface CreateDeviceOptions extends CreateOptions {
  table: readonly TableTarget[];
}

interface IoctlRequest {
  device?: DeviceId;
  /** The uuid DM_DEV_CREATE gives a new device named by `device`. */
  uuid?: string;
  flags?: number;
  eventNr?: number;
  dev?: bigint;
  targetCount?: number;
  /** Bytes the payload after the header needs. */
  payloadSize?: number;
  writePayload?: (buf: Buffer, offset: number) => void;
  /** Text added to the error message when the ioctl fails. */
  context?: string;
}

interface IoctlReply {
  header: DmIoctlHeader;
  buf: Buffer;
}

function deviceFields(device: DeviceId | undefined): { name?: string; uuid?: string } {
  if (device === undefined) return {};
  if (typeof device === 'string') return { name: device };
  return 'uuid' in device ? { uuid: device.uuid } : { name: device.name };
}

function describeDevice(device: DeviceId | undefined): string | undefined {
  const { name, uuid } = deviceFields(device);
  return name ?? (uuid === undefined ? undefined : `uuid ${uuid}`);
}

function checkDevice(device: DeviceId, command: DmCommandName): void {
  const { name, uuid } = deviceFields(device);
  if (uuid !== undefined) checkUuid(uuid, command);
  else checkName(name as string, command);
}

/** Formats table lines the way `dmsetup table` prints them. */
export function formatTable(targets: readonly TableTarget[]): string {
  return targets.map((t) => `${t.start} ${t.length} ${t.type}${t.params ? ` ${t.params}` : ''}`).join('\n');
}

/** Builds the DeviceInfo of a DM_DEV_STATUS style reply. */
export function deviceInfo(header: DmIoctlHeader): DeviceInfo {
  const { major, minor } = decodeDev(header.dev);
  const has = (bit: number): boolean => (header.flags & bit) !== 0;
  return {
    exists: true,
    name: header.name,
    uuid: header.uuid,
    major,
    minor,
    openCount: header.openCount,
    eventNr: header.eventNr,
    targetCount: header.targetCount,
    suspended: has(DmFlag.DM_SUSPEND_FLAG),
    readOnly: has(DmFlag.DM_READONLY_FLAG),
    liveTable: has(DmFlag.DM_ACTIVE_PRESENT_FLAG),
    inactiveTable: has(DmFlag.DM_INACTIVE_PRESENT_FLAG),
    deferredRemove: has(DmFlag.DM_DEFERRED_REMOVE),
  };
}

/** A handle on /dev/mapper/control. Call close() when done. */
export class DeviceMapper {
  #fd: number | null;
  readonly #libc: Libc;
  readonly #nodeSync: NodeSync | undefined;
  readonly #initialBufferSize: number;
  readonly #maxBufferSize: number;
  #kernelVersion: Version | undefined;

  private constructor(fd: number, libc: Libc, options: DeviceMapperOptions) {
    this.#fd = fd;
    this.#libc = libc;
    this.#nodeSync = options.nodeSync;
    this.#initialBufferSize = options.initialBufferSize ?? DEFAULT_INITIAL_BUFFER_SIZE;
    this.#maxBufferSize = Math.min(options.maxBufferSize ?? DEFAULT_MAX_BUFFER_SIZE, DATA_SIZE_LIMIT);
    if (this.#initialBufferSize < DM_IOCTL_SIZE || this.#initialBufferSize > this.#maxBufferSize) {
      throw new DmError(
        DmErrorCode.INVALID_ARGUMENT,
        `Invalid initialBufferSize ${this.#initialBufferSize}: it must lie between ${DM_IOCTL_SIZE} and maxBufferSize ${this.#maxBufferSize}`,
      );
    }
  }

  /**
   * Opens the control node, creating it as character device 10:236 when it is
   * missing (as in a container or a fresh devtmpfs without udev).
   */
  static open(options: DeviceMapperOptions = {}): DeviceMapper {
    const controlPath = options.controlPath ?? DM_CONTROL_PATH;
    const libc = options.libc ?? loadLibc();
    if (!fs.existsSync(controlPath)) createControlNode(libc, controlPath);
    let fd: number;
    try {
      fd = fs.openSync(controlPath, fs.constants.O_RDWR);
    } catch (error) {
      throw controlOpenError(error as NodeJS.ErrnoException, controlPath);
    }
    const dm = new DeviceMapper(fd, libc, options);
    try {
      dm.version();
    } catch (error) {
      dm.close();
      throw error;
    }
    return dm;
  }

  /** Closes the control node; later calls reject with ERR_DM_CLOSED. */
  close(): void {
    if (this.#fd !== null) fs.closeSync(this.#fd);
    this.#fd = null;
  }

  /** The kernel's device-mapper interface version, such as [4, 47, 0]. */
  version(): Version {
    this.#requireOpen('DM_VERSION');
    if (this.#kernelVersion) return this.#kernelVersion;
    const { header } = this.#ioctl('DM_VERSION', {});
    if (header.version[0] !== DM_VERSION_MAJOR) {
      throw new DmError(
        DmErrorCode.UNSUPPORTED_BY_KERNEL,
        `The kernel's device-mapper interface is ${header.version.join('.')}; this library speaks major version ${DM_VERSION_MAJOR}`,
        { command: 'DM_VERSION' },
      );
    }
    this.#kernelVersion = header.version;
    return header.version;
  }

  /** DM_DEV_CREATE: a new device with no table. */
  create(name: string, options: CreateOptions = {}): DeviceInfo {
    checkName(name, 'DM_DEV_CREATE');
    if (options.uuid !== undefined) checkUuid(options.uuid, 'DM_DEV_CREATE', name);
    let flags = options.readOnly ? DmFlag.DM_READONLY_FLAG : 0;
    let dev: bigint | undefined;
    if (options.minor !== undefined) {
      flags |= DmFlag.DM_PERSISTENT_DEV_FLAG;
      dev = BigInt(options.minor);
    }
    const { header } = this.#ioctl('DM_DEV_CREATE', { device: name, uuid: options.uuid, flags, dev });
    return deviceInfo(header);
  }

  /** DM_TABLE_LOAD: loads `table` as the device's inactive table. */
  load(device: DeviceId, table: readonly TableTarget[], options: LoadOptions = {}): DeviceInfo {
    checkDevice(device, 'DM_TABLE_LOAD');
    checkTable(table, describeDevice(device));
    let flags = 0;
    if (options.readOnly) flags |= DmFlag.DM_READONLY_FLAG;
    if (options.secure) flags |= DmFlag.DM_SECURE_DATA_FLAG;
    const payloadSize = table.reduce((sum, t) => sum + targetSpecSize(t), 0);
    const { header } = this.#ioctl('DM_TABLE_LOAD', {
      device,
      flags,
      targetCount: table.length,
      payloadSize,
      writePayload: (buf, offset) => encodeTargetSpecs(buf, offset, table),
      context: `table ${JSON.stringify(formatTable(table))} (the kernel log names the rejected argument)`,
    });
    return deviceInfo(header);
  }

  /** DM_TABLE_CLEAR: drops the inactive table. */
  clear(device: DeviceId): DeviceInfo {
    checkDevice(device, 'DM_TABLE_CLEAR');
    return deviceInfo(this.#ioctl('DM_TABLE_CLEAR', { device }).header);
  }

  /** DM_DEV_SUSPEND with DM_SUSPEND_FLAG. */
  suspend(device: DeviceId, options: SuspendOptions = {}): DeviceInfo {
    checkDevice(device, 'DM_DEV_SUSPEND');
    let flags = DmFlag.DM_SUSPEND_FLAG;
    if (options.noflush) flags |= DmFlag.DM_NOFLUSH_FLAG;
    if (options.nolockfs) flags |= DmFlag.DM_SKIP_LOCKFS_FLAG;
    return deviceInfo(this.#ioctl('DM_DEV_SUSPEND', { device, flags }).header);
  }

  /**
   * DM_DEV_SUSPEND without DM_SUSPEND_FLAG: makes a loaded table live and
   * resumes I/O; the device's node exists when the promise resolves.
   */
  async resume(device: DeviceId): Promise<DeviceInfo> {
    checkDevice(device, 'DM_DEV_SUSPEND');
    const { header, outcome } = await this.#withNodeSync(
      'resume',
      (eventNr) => this.#ioctl('DM_DEV_SUSPEND', { device, eventNr }).header,
      (reply) => ({ kind: 'resume', name: reply.name }),
    );
    return { ...deviceInfo(header), nodeSync: outcome };
  }

  /** DM_DEV_STATUS; a device the kernel does not know gives `{ exists: false }`. */
  info(device: DeviceId): DeviceInfo | MissingDevice {
    checkDevice(device, 'DM_DEV_STATUS');
    try {
      return deviceInfo(this.#ioctl('DM_DEV_STATUS', { device }).header);
    } catch (error) {
      if (error instanceof DmError && error.notFound) return { exists: false, ...deviceFields(device) };
      throw error;
    }
  }

  /** DM_TABLE_STATUS with DM_STATUS_TABLE_FLAG: the table as the kernel prints it. */
  table(device: DeviceId, options: StatusOptions = {}): TargetReply[] {
    return this.#tableStatus(device, DmFlag.DM_STATUS_TABLE_FLAG, options);
  }

  /** DM_TABLE_STATUS: each target's status line. */
  status(device: DeviceId, options: StatusOptions = {}): TargetReply[] {
    return this.#tableStatus(device, 0, options);
  }

  /** DM_TABLE_DEPS: device numbers the live table uses. */
  deps(device: DeviceId): DevNumber[] {
    checkDevice(device, 'DM_TABLE_DEPS');
    const { header, buf } = this.#ioctl('DM_TABLE_DEPS', { device });
    return decodeTargetDeps(buf, header.dataStart, header.dataSize).map(decodeDev);
  }

  /**
   * DM_TARGET_MSG: sends `message` to the target that maps `sector`. Returns
   * the target's reply text, or undefined when it sent none.
   */
  message(device: DeviceId, sector: bigint | number, message: string): string | undefined {
    checkDevice(device, 'DM_TARGET_MSG');
    if (message.length === 0) {
      throw new DmError(DmErrorCode.INVALID_ARGUMENT, 'Invalid target message: it is empty', {
        command: 'DM_TARGET_MSG',
        device: describeDevice(device),
      });
    }
    const { header, buf } = this.#ioctl('DM_TARGET_MSG', {
      device,
      payloadSize: targetMsgSize(message),
      writePayload: (b, offset) => encodeTargetMsg(b, offset, BigInt(sector), message),
      context: `message ${JSON.stringify(message)}`,
    });
    if ((header.flags & DmFlag.DM_DATA_OUT_FLAG) === 0) return undefined;
    return readCString(buf, header.dataStart, header.dataSize);
  }

  /** DM_LIST_DEVICES: every device, with event numbers and uuids where the kernel supplies them. */
  listDevices(): NameListEntry[] {
    // DM_UUID_FLAG asks kernels from 4.46 on to append each device's uuid.
    const flags = this.version()[1] >= DM_NAME_LIST_UUID_MINOR ? DmFlag.DM_UUID_FLAG : 0;
    const { header, buf } = this.#ioctl('DM_LIST_DEVICES', { flags });
    const withEventNr = header.version[1] >= DM_NAME_LIST_EVENT_NR_MINOR;
    return decodeNameList(buf, header.dataStart, header.dataSize, withEventNr);
  }

  /** DM_LIST_VERSIONS: the target types the kernel has loaded, with versions. */
  listVersions(): TargetVersion[] {
    const { header, buf } = this.#ioctl('DM_LIST_VERSIONS', {});
    return decodeTargetVersions(buf, header.dataStart, header.dataSize);
  }

  /**
   * DM_DEV_REMOVE. With `retry`, EBUSY is retried the given number of times;
   * when the retries run out the error reports the device's open count.
   */
  async remove(device: DeviceId, options: RemoveOptions = {}): Promise<void> {
    checkDevice(device, 'DM_DEV_REMOVE');
    const flags = options.deferred ? DmFlag.DM_DEFERRED_REMOVE : 0;
    const retries = options.retry === true ? DEFAULT_REMOVE_RETRIES : options.retry || 0;
    const delayMs = options.retryDelayMs ?? DEFAULT_REMOVE_RETRY_DELAY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#withNodeSync(
          'remove',
          (eventNr) => this.#ioctl('DM_DEV_REMOVE', { device, flags, eventNr }).header,
          (reply) => ({ kind: 'remove', name: reply.name }),
        );
        return;
      } catch (error) {
        if (!(error instanceof DmError)) throw error;
        if (error.notFound && options.ignoreMissing) return;
        if (!error.busy) throw error;
        if (attempt < retries) {
          debug('DM_DEV_REMOVE %s busy, retry %d of %d in %d ms', describeDevice(device), attempt + 1, retries, delayMs);
          await sleep(delayMs);
          continue;
        }
        throw this.#busyError(device, error, attempt + 1);
      }
    }
  }

  /** DM_DEV_RENAME: gives the device a new name. */
  async rename(device: DeviceId, newName: string): Promise<DeviceInfo> {
    checkDevice(device, 'DM_DEV_RENAME');
    checkName(newName, 'DM_DEV_RENAME');
    const size = Buffer.byteLength(newName, 'utf8') + 1;
    const { header, outcome } = await this.#withNodeSync(
      'rename',
      (eventNr) =>
        this.#ioctl('DM_DEV_RENAME', {
          device,
          eventNr,
          payloadSize: size,
          writePayload: (buf, offset) => {
            buf.write(newName, offset, 'utf8');
          },
        }).header,
      (reply) => ({ kind: 'rename', name: reply.name, newName }),
    );
    return { ...deviceInfo(header), nodeSync: outcome };
  }

  /**
   * Creates a device, loads `table` and resumes it. When a step fails the
   * device is removed again and the error names the failed step.
   */
  async createDevice(name: string, options: CreateDeviceOptions): Promise<DeviceInfo> {
    checkName(name, 'DM_DEV_CREATE');
    checkTable(options.table, name);
    this.create(name, options);
    let step = 'DM_TABLE_LOAD';
    try {
      this.load(name, options.table, { readOnly: options.readOnly });
      step = 'DM_DEV_SUSPEND (resume)';
      return await this.resume(name);
    } catch (error) {
      await this.remove(name, { ignoreMissing: true }).catch((cleanupError: unknown) => {
        debug('rollback of %s failed: %s', name, (cleanupError as Error).message);
      });
      const reason = error instanceof Error ? error.message : String(error);
      throw new DmError(
        error instanceof DmError ? error.code : DmErrorCode.STEP_FAILED,
        `Creating device "${name}" failed at ${step}, so it was removed again. ${reason}`,
        { command: error instanceof DmError ? error.command : undefined, device: name, errno: (error as DmError).errno, cause: error },
      );
    }
  }

  #tableStatus(device: DeviceId, baseFlags: number, options: StatusOptions): TargetReply[] {
    checkDevice(device, 'DM_TABLE_STATUS');
    let flags = baseFlags;
    if (options.inactive) flags |= DmFlag.DM_QUERY_INACTIVE_TABLE_FLAG;
    if (options.noflush) flags |= DmFlag.DM_NOFLUSH_FLAG;
    const { header, buf } = this.#ioctl('DM_TABLE_STATUS', { device, flags });
    return decodeTargetSpecs(buf, header.dataStart, header.dataSize, header.targetCount);
  }

  async #withNodeSync(
    kind: NodeOperation['kind'],
    run: (eventNr: number) => DmIoctlHeader,
    operation: (reply: DmIoctlHeader) => NodeOperation,
  ): Promise<{ header: DmIoctlHeader; outcome: NodeSyncOutcome }> {
    if (!this.#nodeSync) return { header: run(0), outcome: 'none' };
    const task = this.#nodeSync.begin(kind);
    let header: DmIoctlHeader;
    try {
      header = run(task.eventNr);
    } catch (error) {
      task.abort();
      throw error;
    }
    // The reply carries the kernel's name even for a device addressed by uuid.
    const outcome = await task.finish(operation(header), header, decodeDev(header.dev));
    return { header, outcome };
  }

  #busyError(device: DeviceId, cause: DmError, attempts: number): DmError {
    const info = this.info(device);
    const openCount = info.exists ? info.openCount : 0;
    const error = new DmError(
      'EBUSY',
      `Device "${describeDevice(device)}" is busy after ${attempts} attempt(s) to remove it: open count ${openCount}; ` +
        'unmount it or close its users, retry with { retry: true }, or use { deferred: true }',
      { errno: cause.errno, syscall: 'ioctl', command: 'DM_DEV_REMOVE', device: describeDevice(device), cause },
    );
    return Object.assign(error, { openCount });
  }

  /**
   * Issues one ioctl, growing the buffer while the kernel sets
   * DM_BUFFER_FULL_FLAG, and turns a failure into a DmError.
   */
  #requireOpen(command: DmCommandName): number {
    if (this.#fd === null) {
      throw new DmError(DmErrorCode.CLOSED, `Device-mapper handle is closed; open a new one to run ${command}`, { command });
    }
    return this.#fd;
  }

  #ioctl(command: DmCommandName, request: IoctlRequest): IoctlReply {
    const fd = this.#requireOpen(command);
    const { name, uuid: uuidFromId } = deviceFields(request.device);
    const payloadSize = request.payloadSize ?? 0;
    let size = Math.max(this.#initialBufferSize, DM_IOCTL_SIZE + payloadSize);
    const requestNumber = dmRequest(command);
    for (;;) {
      const buf = Buffer.alloc(size);
      encodeHeader(buf, {
        version: DM_COMMAND_MIN_VERSION[command],
        dataSize: size,
        dataStart: DM_IOCTL_SIZE,
        targetCount: request.targetCount,
        flags: request.flags,
        eventNr: request.eventNr,
        dev: request.dev,
        name,
        uuid: uuidFromId ?? request.uuid,
      });
      request.writePayload?.(buf, DM_IOCTL_SIZE);
      const result = this.#libc.ioctlBuffer(fd, requestNumber, buf);
      const device = describeDevice(request.device);
      if (result < 0) {
        debug('%s %s flags=%s -> errno %d', command, device ?? '-', flagNames(request.flags ?? 0).join('|') || '0', -result);
        const where = device === undefined ? '' : ` on "${device}"`;
        const extra = request.context ? `; ${request.context}` : '';
        throw systemError(-result, `${command}${where} failed${extra}`, { syscall: 'ioctl', command, device });
      }
      const header = decodeHeader(buf);
      debug('%s %s flags=%s -> ok, reply %d bytes, flags %s', command, device ?? '-', request.flags ?? 0, header.dataSize, header.flags);
      if ((header.flags & DmFlag.DM_BUFFER_FULL_FLAG) === 0) {
        this.#checkReply(command, header, size, device);
        return { header, buf };
      }
      // NOTE: a DM_TARGET_MSG whose reply overflowed has already run; libdm
      // repeats it the same way, so only messages safe to repeat should produce output.
      const next = size * 2;
      if (next > this.#maxBufferSize) {
        throw new DmError(
          DmErrorCode.BUFFER_LIMIT,
          `${command} reply does not fit in ${size} bytes and the next size ${next} exceeds maxBufferSize ${this.#maxBufferSize}; raise maxBufferSize`,
          { command, device },
        );
      }
      debug('%s %s buffer full at %d bytes, retrying with %d', command, device ?? '-', size, next);
      size = next;
    }
  }

  #checkReply(command: DmCommandName, header: DmIoctlHeader, size: number, device: string | undefined): void {
    // A reply without payload may set data_size to offsetof(data) = 305,
    // below data_start: decoders read that as an empty payload.
    if (header.dataSize > size) {
      throw new DmError(
        DmErrorCode.INVALID_ARGUMENT,
        `${command} reply is malformed: data_size ${header.dataSize} exceeds the ${size}-byte buffer`,
        { command, device },
      );
    }
  }
}

function checkTable(table: readonly TableTarget[], device: string | undefined): void {
  const fail = (why: string): never => {
    throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid table for "${device}": ${why}`, {
      command: 'DM_TABLE_LOAD',
      device,
    });
  };
  if (table.length === 0) fail('it has no targets; give at least one line');
  let expectedStart = 0n;
  for (const [i, target] of table.entries()) {
    const line = `line ${i + 1} (${formatTable([target])})`;
    if (target.start !== expectedStart) fail(`${line} starts at sector ${target.start}, expected ${expectedStart}`);
    if (target.length <= 0n) fail(`${line} has length ${target.length}; lengths must be positive`);
    if (!/^[A-Za-z0-9_-]{1,15}$/.test(target.type)) {
      fail(`${line} has target type ${JSON.stringify(target.type)}; a type is 1 to 15 characters of [A-Za-z0-9_-]`);
    }
    if (target.params.includes('\n')) fail(`${line} has a newline in its parameters`);
    expectedStart += target.length;
  }
}

function createControlNode(libc: Libc, controlPath: string): void {
  fs.mkdirSync(path.dirname(controlPath), { recursive: true, mode: 0o755 });
  const dev = (BigInt(DM_CONTROL_MAJOR) << 8n) | BigInt(DM_CONTROL_MINOR);
  const result = libc.mknod(controlPath, S_IFCHR | 0o600, dev);
  if (result < 0 && -result !== osConstants.errno.EEXIST) {
    throw systemError(-result, `Creating the control node ${controlPath} (10:236) failed; run as root`, {
      syscall: 'mknod',
      path: controlPath,
    });
  }
  debug('created %s as 10:236', controlPath);
}

function controlOpenError(error: NodeJS.ErrnoException, controlPath: string): DmError {
  const errno = -(error.errno ?? 0);
  if (error.code === 'ENODEV' || error.code === 'ENXIO') {
    return new DmError(
      DmErrorCode.DRIVER_UNAVAILABLE,
      `No device-mapper driver behind ${controlPath}: ${error.code}; load the dm_mod kernel module (modprobe dm_mod)`,
      { errno, syscall: 'open', path: controlPath, cause: error },
    );
  }
  return systemError(errno, `Opening ${controlPath} failed${error.code === 'EACCES' || error.code === 'EPERM' ? '; run as root' : ''}`, {
    syscall: 'open',
    path: controlPath,
    cause: error,
  });
}
