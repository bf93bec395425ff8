// One device-mapper ioctl: encode the header and payload, check the command
// and its flags against the kernel's interface version, grow the buffer while
// the kernel sets DM_BUFFER_FULL_FLAG, and turn a failure into a DmError.

import { debuglog } from 'node:util';

import { align8, decodeHeader, encodeHeader, writeCString, type DmIoctlHeader, type Version } from '../ioctl/codec.js';
import {
  DM_COMMAND_MIN_VERSION,
  DM_IOCTL_SIZE,
  DM_NAME_LEN,
  DM_UUID_LEN,
  DmFlag,
  DmIoctlOffset,
  dmRequest,
  flagNames,
  type DmCommandName,
  type DmFlagName,
} from '../ioctl/constants.js';
import { DmError, DmErrorCode, systemError } from '../ioctl/errors.js';
import type { Libc } from '../ioctl/libc.js';

const debug = debuglog('dm');

/** First buffer size for replies that can grow (libdm starts at 16 KiB too). */
export const DEFAULT_INITIAL_BUFFER_SIZE = 16 * 1024;
/** Largest buffer grown to on DM_BUFFER_FULL_FLAG before giving up. */
export const DEFAULT_MAX_BUFFER_SIZE = 256 * 1024 * 1024;
/** Upper bound of `data_size`, a __u32. */
const DATA_SIZE_LIMIT = 0xffffffff;

/**
 * Interface minor from which the kernel honours each input flag, as lvm2's
 * libdm-iface.c checks them (deferred remove arrived with 4.27).
 */
export const DM_FLAG_MIN_MINOR: Partial<Record<DmFlagName, number>> = {
  DM_NOFLUSH_FLAG: 12,
  DM_QUERY_INACTIVE_TABLE_FLAG: 16,
  DM_UUID_FLAG: 19,
  DM_SECURE_DATA_FLAG: 20,
  DM_DEFERRED_REMOVE: 27,
  DM_IMA_MEASUREMENT_FLAG: 45,
};

const F = DmFlag;
/**
 * Input flags each command accepts. DM_EXISTS_FLAG, DM_SKIP_BDGET_FLAG and
 * DM_PERSISTENT_DEV_FLAG are accepted everywhere because libdm may send them
 * with any command (the last whenever it addresses a device by number).
 */
export const DM_COMMAND_FLAGS: Readonly<Record<DmCommandName, number>> = {
  DM_VERSION: 0,
  DM_REMOVE_ALL: F.DM_DEFERRED_REMOVE,
  DM_LIST_DEVICES: F.DM_UUID_FLAG,
  DM_DEV_CREATE: F.DM_READONLY_FLAG | F.DM_PERSISTENT_DEV_FLAG,
  DM_DEV_REMOVE: F.DM_DEFERRED_REMOVE,
  DM_DEV_RENAME: F.DM_UUID_FLAG,
  DM_DEV_SUSPEND: F.DM_SUSPEND_FLAG | F.DM_NOFLUSH_FLAG | F.DM_SKIP_LOCKFS_FLAG,
  DM_DEV_STATUS: 0,
  DM_DEV_WAIT: F.DM_STATUS_TABLE_FLAG | F.DM_QUERY_INACTIVE_TABLE_FLAG | F.DM_NOFLUSH_FLAG,
  DM_TABLE_LOAD: F.DM_READONLY_FLAG | F.DM_SECURE_DATA_FLAG,
  DM_TABLE_CLEAR: 0,
  DM_TABLE_DEPS: F.DM_QUERY_INACTIVE_TABLE_FLAG,
  DM_TABLE_STATUS: F.DM_STATUS_TABLE_FLAG | F.DM_QUERY_INACTIVE_TABLE_FLAG | F.DM_NOFLUSH_FLAG | F.DM_IMA_MEASUREMENT_FLAG,
  DM_LIST_VERSIONS: 0,
  DM_TARGET_MSG: F.DM_SECURE_DATA_FLAG | F.DM_QUERY_INACTIVE_TABLE_FLAG,
  DM_DEV_SET_GEOMETRY: 0,
  DM_DEV_ARM_POLL: 0,
  DM_GET_TARGET_VERSION: 0,
};
const ALWAYS_ALLOWED_FLAGS = F.DM_EXISTS_FLAG | F.DM_SKIP_BDGET_FLAG | F.DM_PERSISTENT_DEV_FLAG;
/** Flags that have a minimum interface version, so only these are looked up per call. */
const GATED_FLAGS = Object.keys(DM_FLAG_MIN_MINOR).reduce((mask, name) => mask | DmFlag[name as DmFlagName], 0);

/**
 * Commands whose reply carries no payload: their buffer is just the header
 * plus the request's own payload, which keeps the hot path (DM_DEV_STATUS)
 * from clearing 16 KiB per call.
 */
const HEADER_ONLY_REPLIES = new Set<DmCommandName>([
  'DM_REMOVE_ALL',
  'DM_DEV_CREATE',
  'DM_DEV_REMOVE',
  'DM_DEV_RENAME',
  'DM_DEV_SUSPEND',
  'DM_DEV_STATUS',
  'DM_TABLE_LOAD',
  'DM_TABLE_CLEAR',
  'DM_DEV_SET_GEOMETRY',
  'DM_DEV_ARM_POLL',
]);

/** Per command, a header with its minimum version and data_start set and every other field zero. */
const HEADER_TEMPLATES = new Map<DmCommandName, Buffer>(
  (Object.keys(DM_COMMAND_MIN_VERSION) as DmCommandName[]).map((command) => {
    const template = Buffer.alloc(DM_IOCTL_SIZE);
    encodeHeader(template, { version: DM_COMMAND_MIN_VERSION[command], dataSize: DM_IOCTL_SIZE, dataStart: DM_IOCTL_SIZE });
    template.writeUInt32LE(0, DmIoctlOffset.data_size);
    return [command, template];
  }),
);

const REQUEST_NUMBERS = new Map<DmCommandName, number>(
  (Object.keys(DM_COMMAND_MIN_VERSION) as DmCommandName[]).map((command) => [command, dmRequest(command)]),
);

export interface IoctlRequest {
  /** The kernel (mangled) name of the device, or its uuid. */
  name?: string;
  uuid?: string;
  /** Describes the device in messages and logs; defaults to name or uuid. */
  device?: string;
  flags?: number;
  eventNr?: number;
  dev?: bigint;
  targetCount?: number;
  /** Bytes the payload after the header needs. */
  payloadSize?: number;
  writePayload?: (buf: Buffer, offset: number) => void;
  /** Text added to the error message when the ioctl fails; a function is only called then. */
  context?: string | (() => string);
  /** Runs on another descriptor than the transport's own (arm-poll waiters). */
  fd?: number;
}

export interface IoctlReply {
  header: DmIoctlHeader;
  buf: Buffer;
}

export interface TransportOptions {
  initialBufferSize?: number;
  maxBufferSize?: number;
}

function compareVersions(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** Issues device-mapper ioctls on one control descriptor. */
export class DmTransport {
  #fd: number | null;
  readonly libc: Libc;
  readonly initialBufferSize: number;
  readonly maxBufferSize: number;
  /** The kernel's interface version, known once DM_VERSION has returned. */
  kernelVersion: Version | undefined;
  #scratchBuffer: Buffer = Buffer.alloc(0);
  readonly #fittedSizes = new Map<DmCommandName, number>();

  constructor(fd: number, libc: Libc, options: TransportOptions = {}) {
    this.#fd = fd;
    this.libc = libc;
    this.initialBufferSize = options.initialBufferSize ?? DEFAULT_INITIAL_BUFFER_SIZE;
    this.maxBufferSize = Math.min(options.maxBufferSize ?? DEFAULT_MAX_BUFFER_SIZE, DATA_SIZE_LIMIT);
    if (this.initialBufferSize < DM_IOCTL_SIZE || this.initialBufferSize > this.maxBufferSize) {
      throw new DmError(
        DmErrorCode.INVALID_ARGUMENT,
        `Invalid initialBufferSize ${this.initialBufferSize}: it must lie between ${DM_IOCTL_SIZE} and maxBufferSize ${this.maxBufferSize}`,
      );
    }
  }

  /** Returns the control descriptor, or throws ERR_DM_CLOSED after close(). */
  requireFd(command: DmCommandName): number {
    if (this.#fd === null) {
      throw new DmError(DmErrorCode.CLOSED, `Device-mapper handle is closed; open a new one to run ${command}`, { command });
    }
    return this.#fd;
  }

  /** Forgets the descriptor and returns it for the caller to close. */
  detach(): number | null {
    const fd = this.#fd;
    this.#fd = null;
    return fd;
  }

  /** Throws ERR_DM_UNSUPPORTED_BY_KERNEL when the kernel is older than `command` or one of `flags` needs. */
  checkSupported(command: DmCommandName, flags: number, device?: string): void {
    const kernel = this.kernelVersion;
    if (!kernel) return;
    const needed = DM_COMMAND_MIN_VERSION[command];
    if (compareVersions(kernel, needed) < 0) {
      throw new DmError(
        DmErrorCode.UNSUPPORTED_BY_KERNEL,
        `${command} needs device-mapper interface ${needed.join('.')}, the kernel has ${kernel.join('.')}; upgrade the kernel`,
        { command, device },
      );
    }
    if ((flags & GATED_FLAGS) === 0) return;
    for (const name of flagNames(flags & GATED_FLAGS)) {
      const minor = DM_FLAG_MIN_MINOR[name];
      if (minor !== undefined && kernel[1] < minor) {
        throw new DmError(
          DmErrorCode.UNSUPPORTED_BY_KERNEL,
          `${command} with ${name} needs device-mapper interface 4.${minor}.0, the kernel has ${kernel.join('.')}`,
          { command, device },
        );
      }
    }
  }

  /**
   * Runs `command` synchronously. The reply's `buf` is a scratch buffer of
   * this transport: it is valid until the next call, so decode it at once.
   */
  run(command: DmCommandName, request: IoctlRequest): IoctlReply {
    const fd = request.fd ?? this.requireFd(command);
    const device = request.device ?? request.name ?? (request.uuid === undefined ? undefined : `uuid ${request.uuid}`);
    this.#checkFlags(command, request.flags ?? 0, device);
    let size = this.#firstSize(command, request);
    for (;;) {
      const buf = this.#encode(command, request, this.#scratch(size), size);
      const result = this.libc.ioctlBuffer(fd, REQUEST_NUMBERS.get(command) as number, buf);
      const reply = this.#finish(command, request, device, buf, result);
      if (reply) {
        if (size > this.initialBufferSize) this.#fittedSizes.set(command, size);
        return reply;
      }
      size = this.#grow(command, device, size);
    }
  }

  #firstSize(command: DmCommandName, request: IoctlRequest): number {
    const needed = align8(DM_IOCTL_SIZE + (request.payloadSize ?? 0));
    if (HEADER_ONLY_REPLIES.has(command)) return needed;
    // Start where the last reply of this command fitted, so a long device
    // list does not regrow from 16 KiB on every call.
    return Math.max(this.initialBufferSize, needed, this.#fittedSizes.get(command) ?? 0);
  }

  /** A buffer of exactly `size` bytes from this transport's scratch memory; #encode overwrites all of it. */
  #scratch(size: number): Buffer {
    if (this.#scratchBuffer.length < size) this.#scratchBuffer = Buffer.alloc(Math.max(size, this.initialBufferSize));
    return this.#scratchBuffer.subarray(0, size);
  }

  /** Runs `command` on a worker thread, for commands that block in the kernel. */
  async runAsync(command: DmCommandName, request: IoctlRequest): Promise<IoctlReply> {
    const fd = request.fd ?? this.requireFd(command);
    const device = request.device ?? request.name ?? (request.uuid === undefined ? undefined : `uuid ${request.uuid}`);
    this.#checkFlags(command, request.flags ?? 0, device);
    let size = this.#firstSize(command, request);
    for (;;) {
      // Async calls get their own buffer: the scratch one may be reused meanwhile.
      const buf = this.#encode(command, request, Buffer.alloc(size), size);
      const result = await this.libc.ioctlBufferAsync(fd, REQUEST_NUMBERS.get(command) as number, buf);
      const reply = this.#finish(command, request, device, buf, result);
      if (reply) return reply;
      size = this.#grow(command, device, size);
    }
  }

  #checkFlags(command: DmCommandName, flags: number, device: string | undefined): void {
    const unexpected = flags & ~(DM_COMMAND_FLAGS[command] | ALWAYS_ALLOWED_FLAGS);
    if (unexpected !== 0) {
      // The methods build flags themselves, so this is a bug in the library.
      throw new DmError(
        DmErrorCode.INVALID_ARGUMENT,
        `Internal error: ${command} does not take ${flagNames(unexpected).join(', ')}`,
        { command, device },
      );
    }
    if (command !== 'DM_VERSION') this.checkSupported(command, flags, device);
  }

  /**
   * Fills `buf` (of `size` bytes) with the request. The header starts as a
   * copy of the command's template (version and data_start filled, the rest
   * zero), which costs less than zeroing it and writing each field; the
   * fixture tests pin the bytes against encodeHeader() and dmsetup.
   */
  #encode(command: DmCommandName, request: IoctlRequest, buf: Buffer, size: number): Buffer {
    (HEADER_TEMPLATES.get(command) as Buffer).copy(buf, 0);
    if (size > DM_IOCTL_SIZE) buf.fill(0, DM_IOCTL_SIZE, size);
    buf.writeUInt32LE(size, DmIoctlOffset.data_size);
    // libdm marks every request that names a device by number with DM_PERSISTENT_DEV_FLAG.
    const flags = request.dev === undefined ? request.flags ?? 0 : (request.flags ?? 0) | DmFlag.DM_PERSISTENT_DEV_FLAG;
    if (flags) buf.writeUInt32LE(flags >>> 0, DmIoctlOffset.flags);
    if (request.targetCount) buf.writeUInt32LE(request.targetCount, DmIoctlOffset.target_count);
    if (request.eventNr) buf.writeUInt32LE(request.eventNr >>> 0, DmIoctlOffset.event_nr);
    if (request.dev) buf.writeBigUInt64LE(request.dev, DmIoctlOffset.dev);
    if (request.name) writeCString(buf, DmIoctlOffset.name, DM_NAME_LEN, request.name);
    if (request.uuid) writeCString(buf, DmIoctlOffset.uuid, DM_UUID_LEN, request.uuid);
    request.writePayload?.(buf, DM_IOCTL_SIZE);
    return buf;
  }

  /** Returns the reply, throws the failure, or returns undefined when the buffer must grow. */
  #finish(command: DmCommandName, request: IoctlRequest, device: string | undefined, buf: Buffer, result: number): IoctlReply | undefined {
    const flags = request.flags ?? 0;
    if (result < 0) {
      if (debug.enabled) debug('%s %s flags=%s -> errno %d', command, device ?? '-', flagNames(flags).join('|') || '0', -result);
      const where = device === undefined ? '' : ` on "${device}"`;
      const context = typeof request.context === 'function' ? request.context() : request.context;
      const extra = context ? `; ${context}` : '';
      const error = systemError(-result, `${command}${where} failed${extra}`, { syscall: 'ioctl', command, device });
      // DM_VERSION callers read the kernel's version from a rejected header.
      if (command === 'DM_VERSION') Object.assign(error, { reply: buf });
      throw error;
    }
    const header = decodeHeader(buf);
    if (debug.enabled) {
      debug('%s %s flags=%s -> ok, data_size %d, flags %s', command, device ?? '-', flagNames(flags).join('|') || '0', header.dataSize, flagNames(header.flags).join('|') || '0');
    }
    if ((header.flags & DmFlag.DM_BUFFER_FULL_FLAG) !== 0) return undefined;
    // A reply without payload may set data_size to offsetof(data) = 305,
    // below data_start: decoders read that as an empty payload.
    if (header.dataSize > buf.length) {
      throw new DmError(
        DmErrorCode.INVALID_ARGUMENT,
        `${command} reply is malformed: data_size ${header.dataSize} exceeds the ${buf.length}-byte buffer`,
        { command, device },
      );
    }
    return { header, buf };
  }

  #grow(command: DmCommandName, device: string | undefined, size: number): number {
    // NOTE: a DM_TARGET_MSG whose reply overflowed has already run; libdm
    // repeats it the same way, so only messages safe to repeat should produce output.
    const next = size * 2;
    if (next > this.maxBufferSize) {
      throw new DmError(
        DmErrorCode.BUFFER_LIMIT,
        `${command} reply does not fit in ${size} bytes and the next size ${next} exceeds maxBufferSize ${this.maxBufferSize}; raise maxBufferSize`,
        { command, device },
      );
    }
    debug('%s %s buffer full at %d bytes, retrying with %d', command, device ?? '-', size, next);
    return next;
  }
}
