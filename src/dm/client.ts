// The device-mapper client: one method per ioctl command on
// /dev/mapper/control. Commands the kernel completes at once are synchronous;
// the ones that wait (for udev, for an event, between retries) return promises.

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
  encodeDev,
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
  DM_CONTROL_MAJOR,
  DM_CONTROL_MINOR,
  DM_CONTROL_PATH,
  DM_NAME_LIST_EVENT_NR_MINOR,
  DM_NAME_LIST_UUID_MINOR,
  DM_VERSION_MAJOR,
  DmFlag,
  type DmCommandName,
} from '../ioctl/constants.js';
import { DmError, DmErrorCode, systemError } from '../ioctl/errors.js';
import { libc as loadLibc, S_IFCHR, type Libc } from '../ioctl/libc.js';
import { waitForEvent, type WaitEventOptions } from './events.js';
import { demangleName, mangleName, type NameMangling } from './mangle.js';
import { checkName, checkUuid } from './names.js';
import { DmTransport, type IoctlReply, type IoctlRequest, type TransportOptions } from './transport.js';
import type { DeviceId, DeviceInfo, MissingDevice, NodeOperation, NodeSync, NodeSyncOutcome, TableTarget } from './types.js';

export { DEFAULT_INITIAL_BUFFER_SIZE, DEFAULT_MAX_BUFFER_SIZE } from './transport.js';

const debug = debuglog('dm');

/** libdm's DM_IOCTL_RETRIES and DM_RETRY_USLEEP_DELAY: 25 tries 200 ms apart. */
export const DEFAULT_REMOVE_RETRIES = 25;
export const DEFAULT_REMOVE_RETRY_DELAY_MS = 200;

/** Target types the kernel loads only with DM_READONLY_FLAG. */
const READ_ONLY_TARGETS = new Set(['verity']);

/** Names already checked are remembered up to this count, then the cache starts over. */
const NAME_CACHE_SIZE = 4096;
/** A name of only the bytes libdm never mangles. */
const PLAIN_NAME = /^[0-9A-Za-z#+\-.:=@_]*$/;

/** The message that cancels a pending deferred remove (dm-ioctl.c message_for_md). */
export const CANCEL_DEFERRED_REMOVE_MESSAGE = '@cancel_deferred_remove';

export interface DeviceMapperOptions extends TransportOptions {
  /** Path of the control node; default /dev/mapper/control. */
  controlPath?: string;
  /** The system-call binding; tests pass a fake kernel here. */
  libc?: Libc;
  /** Keeps /dev/mapper nodes in step; omit to leave nodes alone. */
  nodeSync?: NodeSync;
  /** Mangling mode for names with bytes udev cannot carry (default `auto`, as libdm). */
  nameMangling?: NameMangling;
}

export interface CreateOptions {
  uuid?: string;
  /**
   * DM_READONLY_FLAG, as `dmsetup create -r --notable` sends it. The kernel
   * makes a device read-only when a table is loaded with the flag, so pass
   * it to load() as well.
   */
  readOnly?: boolean;
  /** Ask for this minor number (DM_PERSISTENT_DEV_FLAG). */
  minor?: number;
}

export interface LoadOptions {
  readOnly?: boolean;
  /** DM_SECURE_DATA_FLAG: the kernel wipes its copy of the buffer (for crypt keys). */
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
  /** DM_IMA_MEASUREMENT_FLAG: the IMA measurement text instead of the status (4.45). */
  imaMeasurement?: boolean;
}

export interface InfoOptions {
  /** DM_SKIP_BDGET_FLAG: skip the open count, as `dmsetup --noopencount`; openCount reads 0. */
  noOpenCount?: boolean;
}

export interface MessageOptions {
  /** DM_SECURE_DATA_FLAG: the kernel wipes its copy (for key messages). */
  secure?: boolean;
}

export interface CreateDeviceOptions extends CreateOptions {
  table: readonly TableTarget[];
}

/** Disk geometry as DM_DEV_SET_GEOMETRY takes it, and as HDIO_GETGEO then reports it. */
export interface Geometry {
  cylinders: number;
  heads: number;
  sectors: number;
  /** First sector of the device on the disk. */
  start: number;
}

/** Result of DM_DEV_WAIT: the device and the status of each target. */
export interface DeviceEvent {
  info: DeviceInfo;
  targets: TargetReply[];
}

/** Formats table lines the way `dmsetup table` prints them. */
export function formatTable(targets: readonly TableTarget[]): string {
  return targets.map((t) => `${t.start} ${t.length} ${t.type}${t.params ? ` ${t.params}` : ''}`).join('\n');
}

/** Builds the DeviceInfo of a reply header; `name` is the demangled name. */
export function deviceInfo(header: DmIoctlHeader, name = header.name): DeviceInfo {
  const { major, minor } = decodeDev(header.dev);
  const has = (bit: number): boolean => (header.flags & bit) !== 0;
  return {
    exists: true,
    name,
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
  readonly #transport: DmTransport;
  readonly #nodeSync: NodeSync | undefined;
  readonly #mangling: NameMangling;
  readonly #controlPath: string;
  /** Names already checked, mapped to their kernel form. */
  readonly #kernelNames = new Map<string, string>();

  private constructor(transport: DmTransport, controlPath: string, options: DeviceMapperOptions) {
    this.#transport = transport;
    this.#controlPath = controlPath;
    this.#nodeSync = options.nodeSync;
    this.#mangling = options.nameMangling ?? 'auto';
  }

  /**
   * Opens the control node, creating it as character device 10:236 when it is
   * missing (as in a container or a fresh devtmpfs without udev).
   */
  static open(options: DeviceMapperOptions = {}): DeviceMapper {
    const controlPath = options.controlPath ?? DM_CONTROL_PATH;
    const libc = options.libc ?? loadLibc();
    const fd = openControl(libc, controlPath);
    let dm: DeviceMapper;
    try {
      dm = new DeviceMapper(new DmTransport(fd, libc, options), controlPath, options);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
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
    const fd = this.#transport.detach();
    if (fd !== null) fs.closeSync(fd);
  }

  /** DM_VERSION: the kernel's interface version, such as [4, 47, 0] (asked once, then cached). */
  version(): Version {
    this.#transport.requireFd('DM_VERSION');
    if (this.#transport.kernelVersion) return this.#transport.kernelVersion;
    let header: DmIoctlHeader;
    try {
      header = this.#transport.run('DM_VERSION', {}).header;
    } catch (error) {
      // A kernel with another major version rejects the request with EINVAL
      // but still writes its own version into the header it returns.
      const rejected = error instanceof DmError ? (error as DmError & { reply?: Buffer }).reply : undefined;
      if (!(error instanceof DmError) || error.code !== 'EINVAL' || !rejected) throw error;
      header = decodeHeader(rejected);
    }
    if (header.version[0] !== DM_VERSION_MAJOR) {
      throw new DmError(
        DmErrorCode.UNSUPPORTED_BY_KERNEL,
        `The kernel's device-mapper interface is ${header.version.join('.')}; this library speaks major version ${DM_VERSION_MAJOR}`,
        { command: 'DM_VERSION' },
      );
    }
    this.#transport.kernelVersion = header.version;
    return header.version;
  }

  /** DM_DEV_CREATE: a new device with no table. */
  create(name: string, options: CreateOptions = {}): DeviceInfo {
    const kernelName = this.#kernelName(name, 'DM_DEV_CREATE');
    if (options.uuid !== undefined) checkUuid(options.uuid, 'DM_DEV_CREATE', name);
    let flags = options.readOnly ? DmFlag.DM_READONLY_FLAG : 0;
    let dev: bigint | undefined;
    if (options.minor !== undefined) {
      flags |= DmFlag.DM_PERSISTENT_DEV_FLAG;
      // The kernel takes MINOR(huge_decode_dev(dev)), so encode it as libdm's MKDEV does.
      dev = encodeDev({ major: 0, minor: options.minor });
    }
    try {
      return this.#info(this.#run('DM_DEV_CREATE', { name: kernelName, device: name, uuid: options.uuid, flags, dev }));
    } catch (error) {
      if (error instanceof DmError && error.busy) {
        throw new DmError('EBUSY', `Cannot create "${name}": a device with this name or uuid already exists (EBUSY); remove it or pick another name`, {
          errno: error.errno,
          syscall: 'ioctl',
          command: 'DM_DEV_CREATE',
          device: name,
          cause: error,
        });
      }
      throw error;
    }
  }

  /** DM_TABLE_LOAD: loads `table` as the device's inactive table. */
  load(device: DeviceId, table: readonly TableTarget[], options: LoadOptions = {}): DeviceInfo {
    const id = this.#id(device, 'DM_TABLE_LOAD');
    checkTable(table, id.device);
    let flags = 0;
    if (options.readOnly) flags |= DmFlag.DM_READONLY_FLAG;
    if (options.secure) flags |= DmFlag.DM_SECURE_DATA_FLAG;
    const payloadSize = table.reduce((sum, t) => sum + targetSpecSize(t), 0);
    // verity accepts only read-only tables, so a failed load without readOnly gets that hint.
    const readOnlyHint = !options.readOnly && table.some((t) => READ_ONLY_TARGETS.has(t.type)) ? '; verity tables need { readOnly: true }' : '';
    const context = options.secure
      ? `${table.length} target(s), parameters hidden (the kernel log names the rejected argument)${readOnlyHint}`
      : (): string => `table ${JSON.stringify(formatTable(table))} (the kernel log names the rejected argument)${readOnlyHint}`;
    return this.#info(
      this.#run('DM_TABLE_LOAD', {
        ...id,
        flags,
        targetCount: table.length,
        payloadSize,
        writePayload: (buf, offset) => encodeTargetSpecs(buf, offset, table),
        context,
      }),
    );
  }

  /** DM_TABLE_CLEAR: drops the inactive table. */
  clear(device: DeviceId): DeviceInfo {
    return this.#info(this.#run('DM_TABLE_CLEAR', this.#id(device, 'DM_TABLE_CLEAR')));
  }

  /** DM_DEV_SUSPEND with DM_SUSPEND_FLAG. */
  suspend(device: DeviceId, options: SuspendOptions = {}): DeviceInfo {
    let flags = DmFlag.DM_SUSPEND_FLAG;
    if (options.noflush) flags |= DmFlag.DM_NOFLUSH_FLAG;
    if (options.nolockfs) flags |= DmFlag.DM_SKIP_LOCKFS_FLAG;
    return this.#info(this.#run('DM_DEV_SUSPEND', { ...this.#id(device, 'DM_DEV_SUSPEND'), flags }));
  }

  /**
   * DM_DEV_SUSPEND without DM_SUSPEND_FLAG: makes a loaded table live and
   * resumes I/O; the device's node exists when the promise resolves.
   */
  async resume(device: DeviceId, options: SuspendOptions = {}): Promise<DeviceInfo> {
    const id = this.#id(device, 'DM_DEV_SUSPEND');
    let flags = 0;
    if (options.noflush) flags |= DmFlag.DM_NOFLUSH_FLAG;
    if (options.nolockfs) flags |= DmFlag.DM_SKIP_LOCKFS_FLAG;
    const { reply, outcome } = await this.#withNodeSync(
      'resume',
      (eventNr) => this.#run('DM_DEV_SUSPEND', { ...id, flags, eventNr }),
      (header) => ({ kind: 'resume', name: header.name }),
    );
    return { ...this.#info(reply), nodeSync: outcome };
  }

  /** DM_DEV_STATUS; a device the kernel does not know gives `{ exists: false }`. */
  info(device: DeviceId, options: InfoOptions = {}): DeviceInfo | MissingDevice {
    const id = this.#id(device, 'DM_DEV_STATUS');
    const flags = options.noOpenCount ? DmFlag.DM_SKIP_BDGET_FLAG : 0;
    try {
      return this.#info(this.#run('DM_DEV_STATUS', { ...id, flags }));
    } catch (error) {
      if (error instanceof DmError && error.notFound) {
        return typeof device === 'string' ? { exists: false, name: device } : { exists: false, ...device };
      }
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

  /** DM_TABLE_DEPS: device numbers the live (or, with `inactive`, the loaded) table uses. */
  deps(device: DeviceId, options: { inactive?: boolean } = {}): DevNumber[] {
    const flags = options.inactive ? DmFlag.DM_QUERY_INACTIVE_TABLE_FLAG : 0;
    const { header, buf } = this.#run('DM_TABLE_DEPS', { ...this.#id(device, 'DM_TABLE_DEPS'), flags });
    return decodeTargetDeps(buf, header.dataStart, header.dataSize).map(decodeDev);
  }

  /**
   * DM_TARGET_MSG: sends `message` to the target that maps `sector`. Returns
   * the target's reply text, or undefined when it sent none.
   */
  message(device: DeviceId, sector: bigint | number, message: string, options: MessageOptions = {}): string | undefined {
    const id = this.#id(device, 'DM_TARGET_MSG');
    if (message.length === 0 || message.includes('\0')) {
      throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid target message ${JSON.stringify(message)}: it must be non-empty text without NUL bytes`, {
        command: 'DM_TARGET_MSG',
        device: id.device,
      });
    }
    const { header, buf } = this.#run('DM_TARGET_MSG', {
      ...id,
      flags: options.secure ? DmFlag.DM_SECURE_DATA_FLAG : 0,
      payloadSize: targetMsgSize(message),
      writePayload: (b, offset) => encodeTargetMsg(b, offset, BigInt(sector), message),
      context: options.secure ? 'message hidden' : `message ${JSON.stringify(message)}`,
    });
    if ((header.flags & DmFlag.DM_DATA_OUT_FLAG) === 0) return undefined;
    return readCString(buf, header.dataStart, header.dataSize);
  }

  /** DM_LIST_DEVICES: every device, with event numbers and uuids where the kernel supplies them. */
  listDevices(): NameListEntry[] {
    // With DM_UUID_FLAG, kernels from 4.46 on append each device's uuid.
    const flags = this.version()[1] >= DM_NAME_LIST_UUID_MINOR ? DmFlag.DM_UUID_FLAG : 0;
    const { header, buf } = this.#run('DM_LIST_DEVICES', { flags });
    const withEventNr = header.version[1] >= DM_NAME_LIST_EVENT_NR_MINOR;
    const entries = decodeNameList(buf, header.dataStart, header.dataSize, withEventNr);
    for (const entry of entries) entry.name = demangleName(entry.name, this.#mangling);
    return entries;
  }

  /** DM_LIST_VERSIONS: the target types the kernel has loaded, with versions. */
  listVersions(): TargetVersion[] {
    const { header, buf } = this.#run('DM_LIST_VERSIONS', {});
    return decodeTargetVersions(buf, header.dataStart, header.dataSize);
  }

  /** DM_GET_TARGET_VERSION: the version of one target type, loading its module if needed (4.41). */
  targetVersion(type: string): Version {
    const { header, buf } = this.#run('DM_GET_TARGET_VERSION', { name: type, device: type });
    const [found] = decodeTargetVersions(buf, header.dataStart, header.dataSize);
    if (!found) {
      throw new DmError('ENOENT', `Target type ${JSON.stringify(type)} is not known to the kernel; load its module`, {
        command: 'DM_GET_TARGET_VERSION',
        device: type,
      });
    }
    return found.version;
  }

  /**
   * DM_DEV_REMOVE. With `retry`, EBUSY is retried the given number of times;
   * when the retries run out the error reports the device's open count.
   */
  async remove(device: DeviceId, options: RemoveOptions = {}): Promise<void> {
    const id = this.#id(device, 'DM_DEV_REMOVE');
    const flags = options.deferred ? DmFlag.DM_DEFERRED_REMOVE : 0;
    const retries = options.retry === true ? DEFAULT_REMOVE_RETRIES : options.retry || 0;
    const delayMs = options.retryDelayMs ?? DEFAULT_REMOVE_RETRY_DELAY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#withNodeSync(
          'remove',
          (eventNr) => this.#run('DM_DEV_REMOVE', { ...id, flags, eventNr }),
          // A deferred remove of an open device only schedules the removal (the
          // reply keeps DM_DEFERRED_REMOVE and no uevent is sent). The node goes
          // now anyway, as libdm does: the kernel reuses the minor later, and a
          // node left behind would then open another device.
          (header) => ({ kind: 'remove', name: header.name }),
        );
        return;
      } catch (error) {
        if (!(error instanceof DmError)) throw error;
        if (error.notFound && options.ignoreMissing) return;
        if (!error.busy) throw error;
        if (attempt < retries) {
          debug('DM_DEV_REMOVE %s busy, retry %d of %d in %d ms', id.device, attempt + 1, retries, delayMs);
          await sleep(delayMs);
          continue;
        }
        throw this.#busyError(device, id.device, error, attempt + 1);
      }
    }
  }

  /** Cancels a deferred remove that is still pending (the `@cancel_deferred_remove` message). */
  cancelDeferredRemove(device: DeviceId): void {
    this.message(device, 0, CANCEL_DEFERRED_REMOVE_MESSAGE);
  }

  /**
   * DM_REMOVE_ALL: removes every device that is not open; with `deferred`,
   * open ones are marked for deferred removal. Returns the names removed.
   */
  removeAll(options: { deferred?: boolean } = {}): string[] {
    const before = this.listDevices();
    this.#run('DM_REMOVE_ALL', { flags: options.deferred ? DmFlag.DM_DEFERRED_REMOVE : 0 });
    const left = new Set(this.listDevices().map((d) => d.name));
    const removed = before.filter((d) => !left.has(d.name)).map((d) => d.name);
    for (const name of removed) this.#nodeSync?.nodeRemoved?.(mangleName(name, this.#mangling));
    return removed;
  }

  /** DM_DEV_RENAME: gives the device a new name. */
  async rename(device: DeviceId, newName: string): Promise<DeviceInfo> {
    // The kernel's rename finds the old device by name only, so a uuid is
    // turned into the device's name first.
    const id = this.#nameOf(device, 'DM_DEV_RENAME');
    const kernelNewName = this.#kernelName(newName, 'DM_DEV_RENAME');
    const { reply, outcome } = await this.#withNodeSync(
      'rename',
      (eventNr) => this.#run('DM_DEV_RENAME', { ...id, eventNr, ...stringPayload(kernelNewName) }),
      (header) => ({ kind: 'rename', name: header.name, newName: kernelNewName }),
    );
    return { ...this.#info(reply, newName), nodeSync: outcome };
  }

  /** DM_DEV_RENAME with DM_UUID_FLAG: sets the uuid of a device that has none (the kernel allows no change). */
  async setUuid(device: DeviceId, uuid: string): Promise<DeviceInfo> {
    const id = this.#nameOf(device, 'DM_DEV_RENAME');
    checkUuid(uuid, 'DM_DEV_RENAME', id.device);
    try {
      return await this.#setUuid(id, uuid);
    } catch (error) {
      if (error instanceof DmError && error.code === 'EINVAL') {
        throw new DmError('EINVAL', `Setting the uuid of "${id.device}" failed: EINVAL; the kernel sets a uuid only on a device that has none`, {
          errno: error.errno,
          syscall: 'ioctl',
          command: 'DM_DEV_RENAME',
          device: id.device,
          cause: error,
        });
      }
      throw error;
    }
  }

  async #setUuid(id: { name?: string; device: string }, uuid: string): Promise<DeviceInfo> {
    const { reply, outcome } = await this.#withNodeSync(
      'rename',
      (eventNr) => this.#run('DM_DEV_RENAME', { ...id, eventNr, flags: DmFlag.DM_UUID_FLAG, ...stringPayload(uuid) }),
      (header) => ({ kind: 'rename', name: header.name, newName: header.name }),
    );
    return { ...this.#info(reply), nodeSync: outcome };
  }

  /** DM_DEV_SET_GEOMETRY: the geometry HDIO_GETGEO reports for the device. */
  setGeometry(device: DeviceId, geometry: Geometry): void {
    const id = this.#id(device, 'DM_DEV_SET_GEOMETRY');
    for (const [field, value] of Object.entries(geometry)) {
      if (!Number.isInteger(value) || value < 0) {
        throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid geometry ${field} ${value}: use a non-negative integer`, {
          command: 'DM_DEV_SET_GEOMETRY',
          device: id.device,
        });
      }
    }
    const text = `${geometry.cylinders} ${geometry.heads} ${geometry.sectors} ${geometry.start}`;
    this.#run('DM_DEV_SET_GEOMETRY', { ...id, ...stringPayload(text) });
  }

  /** DM_DEV_ARM_POLL: makes poll(2) on the control descriptor report the next dm event (4.36). */
  armPoll(fd?: number): void {
    this.#run('DM_DEV_ARM_POLL', { fd });
  }

  /**
   * DM_DEV_WAIT on a worker thread: resolves when the device's event number
   * differs from `eventNr`, with the target status lines.
   * NOTE: the kernel wait cannot be cancelled; use waitEvent() to wait with
   * an AbortSignal or a timeout.
   */
  async devWait(device: DeviceId, eventNr: number, options: StatusOptions = {}): Promise<DeviceEvent> {
    const id = this.#id(device, 'DM_DEV_WAIT');
    let flags = 0;
    if (options.inactive) flags |= DmFlag.DM_QUERY_INACTIVE_TABLE_FLAG;
    if (options.noflush) flags |= DmFlag.DM_NOFLUSH_FLAG;
    const { header, buf } = await this.#transport.runAsync('DM_DEV_WAIT', { ...id, flags, eventNr });
    return { info: this.#info({ header, buf }), targets: decodeTargetSpecs(buf, header.dataStart, header.dataSize, header.targetCount) };
  }

  /**
   * Waits until the device's event number differs from `eventNr` and returns
   * its info. Built on DM_DEV_ARM_POLL and poll(2) on a descriptor of its own,
   * so it never blocks the event loop and stops on `signal` or `timeoutMs`.
   */
  waitEvent(device: DeviceId, eventNr: number, options: WaitEventOptions = {}): Promise<DeviceInfo> {
    const id = this.#id(device, 'DM_DEV_ARM_POLL');
    this.#transport.checkSupported('DM_DEV_ARM_POLL', 0, id.device);
    return waitForEvent(
      {
        controlPath: this.#controlPath,
        libc: this.#transport.libc,
        armPoll: (fd) => this.armPoll(fd),
        eventNr: () => {
          const info = this.info(device);
          if (!info.exists) {
            throw new DmError('ENXIO', `Device "${id.device}" disappeared while waiting for event ${eventNr}`, {
              errno: osConstants.errno.ENXIO,
              command: 'DM_DEV_STATUS',
              device: id.device,
            });
          }
          return info;
        },
      },
      eventNr,
      options,
    );
  }

  /** Yields the device's info each time its event number changes, until `signal` aborts. */
  async *events(device: DeviceId, options: { signal?: AbortSignal } = {}): AsyncGenerator<DeviceInfo> {
    const first = this.info(device);
    if (!first.exists) throw this.#missing(device, 'DM_DEV_STATUS');
    let eventNr = first.eventNr;
    for (;;) {
      const info = await this.waitEvent(device, eventNr, { signal: options.signal });
      eventNr = info.eventNr;
      yield info;
    }
  }

  /**
   * Creates a device, loads `table` and resumes it. When a step fails the
   * device is removed again and the error names the failed step.
   */
  async createDevice(name: string, options: CreateDeviceOptions): Promise<DeviceInfo> {
    this.#kernelName(name, 'DM_DEV_CREATE');
    checkTable(options.table, name);
    // libdm's create-with-table sends DM_READONLY_FLAG on the load only.
    const created = this.create(name, { uuid: options.uuid, minor: options.minor });
    let step = 'DM_TABLE_LOAD';
    try {
      // Load by the number create returned, as libdm does, so a rename in
      // between cannot send the table to another device.
      this.load({ major: created.major, minor: created.minor }, options.table, { readOnly: options.readOnly });
      step = 'DM_DEV_SUSPEND (resume)';
      return await this.resume(name);
    } catch (error) {
      await this.remove(name, { ignoreMissing: true }).catch((cleanupError: unknown) => {
        debug('rollback of %s failed: %s', name, (cleanupError as Error).message);
      });
      const reason = error instanceof Error ? error.message : String(error);
      const dmError = error instanceof DmError ? error : undefined;
      throw new DmError(dmError?.code ?? DmErrorCode.STEP_FAILED, `Creating device "${name}" failed at ${step}, so it was removed again. ${reason}`, {
        command: dmError?.command,
        syscall: dmError?.syscall,
        device: name,
        errno: dmError?.errno,
        cause: error,
      });
    }
  }

  #tableStatus(device: DeviceId, baseFlags: number, options: StatusOptions): TargetReply[] {
    let flags = baseFlags;
    if (options.inactive) flags |= DmFlag.DM_QUERY_INACTIVE_TABLE_FLAG;
    if (options.noflush) flags |= DmFlag.DM_NOFLUSH_FLAG;
    if (options.imaMeasurement) flags |= DmFlag.DM_IMA_MEASUREMENT_FLAG;
    const { header, buf } = this.#run('DM_TABLE_STATUS', { ...this.#id(device, 'DM_TABLE_STATUS'), flags });
    return decodeTargetSpecs(buf, header.dataStart, header.dataSize, header.targetCount);
  }

  async #withNodeSync(
    kind: NodeOperation['kind'],
    run: (eventNr: number) => IoctlReply,
    operation: (header: DmIoctlHeader) => NodeOperation | undefined,
  ): Promise<{ reply: IoctlReply; outcome: NodeSyncOutcome }> {
    if (!this.#nodeSync) return { reply: run(0), outcome: 'none' };
    const task = this.#nodeSync.begin(kind);
    let reply: IoctlReply;
    try {
      reply = run(task.eventNr);
    } catch (error) {
      task.abort();
      throw error;
    }
    // The reply carries the kernel's name even for a device addressed by uuid.
    const nodeOperation = operation(reply.header);
    if (nodeOperation === undefined) {
      task.abort();
      return { reply, outcome: 'none' };
    }
    const outcome = await task.finish(nodeOperation, reply.header, decodeDev(reply.header.dev));
    return { reply, outcome };
  }

  #busyError(device: DeviceId, described: string | undefined, cause: DmError, attempts: number): DmError {
    const info = this.info(device);
    const openCount = info.exists ? info.openCount : 0;
    const error = new DmError(
      'EBUSY',
      `Device "${described}" is busy after ${attempts} attempt(s) to remove it: open count ${openCount}; ` +
        'unmount it or close its users, retry with { retry: true }, or use { deferred: true }',
      { errno: cause.errno, syscall: 'ioctl', command: 'DM_DEV_REMOVE', device: described, cause },
    );
    return Object.assign(error, { openCount });
  }

  #missing(device: DeviceId, command: DmCommandName): DmError {
    const described = this.#id(device, command).device;
    return new DmError('ENXIO', `Device "${described}" does not exist`, { errno: osConstants.errno.ENXIO, command, device: described });
  }

  /** Checks and mangles a name a caller passed, returning the kernel form. */
  #kernelName(name: string, command: DmCommandName): string {
    const cached = this.#kernelNames.get(name);
    if (cached !== undefined) return cached;
    checkName(name, command);
    // Names of whitelisted bytes only are the same in every mangling mode.
    const kernelName = PLAIN_NAME.test(name) ? name : mangleName(name, this.#mangling);
    if (kernelName !== name) checkName(kernelName, command);
    if (this.#kernelNames.size >= NAME_CACHE_SIZE) this.#kernelNames.clear();
    this.#kernelNames.set(name, kernelName);
    return kernelName;
  }

  /** The request fields that address `device`, checked before any ioctl. */
  #id(device: DeviceId, command: DmCommandName): { name?: string; uuid?: string; dev?: bigint; device: string } {
    if (typeof device === 'string') return { name: this.#kernelName(device, command), device };
    if ('uuid' in device) {
      checkUuid(device.uuid, command);
      return { uuid: device.uuid, device: `uuid ${device.uuid}` };
    }
    if ('major' in device) {
      const { major, minor } = device;
      if (!Number.isInteger(major) || !Number.isInteger(minor) || major < 0 || minor < 0) {
        throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid device number ${major}:${minor}: use non-negative integers`, { command });
      }
      return { dev: encodeDev({ major, minor }), device: `${major}:${minor}` };
    }
    return { name: this.#kernelName(device.name, command), device: device.name };
  }

  /** Like #id, but always by name: a uuid or number is looked up with DM_DEV_STATUS. */
  #nameOf(device: DeviceId, command: DmCommandName): { name?: string; device: string } {
    const id = this.#id(device, command);
    if (id.uuid === undefined && id.dev === undefined) return id;
    const { header } = this.#run('DM_DEV_STATUS', id);
    return { name: header.name, device: id.device };
  }

  #run(command: DmCommandName, request: IoctlRequest): IoctlReply {
    return this.#transport.run(command, request);
  }

  #info(reply: IoctlReply, name?: string): DeviceInfo {
    return deviceInfo(reply.header, name ?? demangleName(reply.header.name, this.#mangling));
  }
}

function stringPayload(text: string): Pick<IoctlRequest, 'payloadSize' | 'writePayload'> {
  return {
    payloadSize: Buffer.byteLength(text, 'utf8') + 1,
    writePayload: (buf, offset) => {
      buf.write(text, offset, 'utf8');
    },
  };
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
    if (typeof target.start !== 'bigint' || typeof target.length !== 'bigint') {
      fail(`${line} gives start and length as ${typeof target.start} and ${typeof target.length}; pass sectors as bigint (2048n)`);
    }
    if (target.start !== expectedStart) fail(`${line} starts at sector ${target.start}, expected ${expectedStart}`);
    if (target.length <= 0n) fail(`${line} has length ${target.length}; lengths must be positive`);
    if (!/^[A-Za-z0-9_-]{1,15}$/.test(target.type)) {
      fail(`${line} has target type ${JSON.stringify(target.type)}; a type is 1 to 15 characters of [A-Za-z0-9_-]`);
    }
    if (target.params.includes('\n') || target.params.includes('\0')) fail(`${line} has a newline or NUL in its parameters`);
    expectedStart += target.length;
  }
}

function openControl(libc: Libc, controlPath: string): number {
  if (!fs.existsSync(controlPath)) createControlNode(libc, controlPath);
  try {
    return fs.openSync(controlPath, fs.constants.O_RDWR);
  } catch (error) {
    throw controlOpenError(error as NodeJS.ErrnoException, controlPath);
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
  const hint = error.code === 'EACCES' || error.code === 'EPERM' ? '; run as root' : '';
  return systemError(errno, `Opening ${controlPath} failed${hint}`, { syscall: 'open', path: controlPath, cause: error });
}
