import { getSystemErrorName } from 'node:util';

/**
 * Stable codes for failures the library detects itself. Failures of a system
 * call keep the errno name (`ENXIO`, `EBUSY`, ...) as their code instead, as
 * Node's own system errors do.
 */
export const DmErrorCode = {
  /** A device name is empty, too long or one the kernel forbids. */
  INVALID_NAME: 'ERR_DM_INVALID_NAME',
  /** A uuid is too long or contains a byte the kernel rejects. */
  INVALID_UUID: 'ERR_DM_INVALID_UUID',
  /** An argument other than a name or uuid is out of range. */
  INVALID_ARGUMENT: 'ERR_DM_INVALID_ARGUMENT',
  /** The kernel's reply still did not fit at the maximum buffer size. */
  BUFFER_LIMIT: 'ERR_DM_BUFFER_LIMIT',
  /** The kernel's interface version is older than the command needs. */
  UNSUPPORTED_BY_KERNEL: 'ERR_DM_UNSUPPORTED_BY_KERNEL',
  /** /dev/mapper/control exists but no device-mapper driver is behind it. */
  DRIVER_UNAVAILABLE: 'ERR_DM_DRIVER_UNAVAILABLE',
  /** The handle was used after close(). */
  CLOSED: 'ERR_DM_CLOSED',
  /** A loop device could not be attached after the allowed attempts. */
  LOOP_ATTACH_FAILED: 'ERR_DM_LOOP_ATTACH_FAILED',
  /** A step of a multi-step operation failed and was rolled back. */
  STEP_FAILED: 'ERR_DM_STEP_FAILED',
  /** A wait (for a dm event, for udev) ran out of time. */
  TIMEOUT: 'ERR_DM_TIMEOUT',
  /** Free data or metadata blocks of a thin pool are below the configured guard. */
  POOL_LOW_ON_SPACE: 'ERR_DM_POOL_LOW_ON_SPACE',
  /** A thin pool reports out_of_data_space. */
  POOL_OUT_OF_DATA_SPACE: 'ERR_DM_POOL_OUT_OF_DATA_SPACE',
  /** A thin pool reports Fail, Error, read-only mode or needs_check. */
  POOL_UNHEALTHY: 'ERR_DM_POOL_UNHEALTHY',
  /** set_transaction_id named a current id that is not the pool's. */
  TRANSACTION_ID_MISMATCH: 'ERR_DM_TRANSACTION_ID_MISMATCH',
  /** No free thin device id was found in the allowed attempts. */
  THIN_IDS_EXHAUSTED: 'ERR_DM_THIN_IDS_EXHAUSTED',
  /** udev runs but the library cannot synchronise with it (no System V semaphores). */
  UDEV_SYNC_UNSUPPORTED: 'ERR_DM_UDEV_SYNC_UNSUPPORTED',
  /** A cookie value that is not a number, or whose key lacks DM_COOKIE_MAGIC. */
  UDEV_INVALID_COOKIE: 'ERR_DM_UDEV_INVALID_COOKIE',
} as const;

export type DmErrorCodeValue = (typeof DmErrorCode)[keyof typeof DmErrorCode];

export interface DmErrorOptions {
  /** Errno value of a failed system call. */
  errno?: number;
  /** The failed system call, such as `ioctl` or `mknod`. */
  syscall?: string;
  /** The device-mapper or loop command, such as `DM_DEV_CREATE`. */
  command?: string;
  /** The dm device name (or loop device path) the call was about. */
  device?: string;
  /** A path the call used, such as a node or backing file. */
  path?: string;
  cause?: unknown;
}

/**
 * The one error type of the library. `code` is either an errno name for a
 * failed system call or one of {@link DmErrorCode}.
 */
export class DmError extends Error {
  override name = 'DmError';
  readonly code: string;
  readonly errno?: number;
  readonly syscall?: string;
  readonly command?: string;
  readonly device?: string;
  readonly path?: string;

  constructor(code: string, message: string, options: DmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.errno = options.errno;
    this.syscall = options.syscall;
    this.command = options.command;
    this.device = options.device;
    this.path = options.path;
  }

  /** True when the kernel reported that the device does not exist (ENXIO). */
  get notFound(): boolean {
    return this.code === 'ENXIO';
  }

  /** True when the device is in use or the name is taken (EBUSY). */
  get busy(): boolean {
    return this.code === 'EBUSY';
  }

  /** True when the thing to create exists already (EEXIST, such as a thin device id). */
  get alreadyExists(): boolean {
    return this.code === 'EEXIST';
  }

  /** True when the caller lacks the privilege (EACCES, EPERM). */
  get permissionDenied(): boolean {
    return this.code === 'EACCES' || this.code === 'EPERM';
  }

  /** True when the kernel rejected a table or argument (EINVAL). */
  get invalidArgument(): boolean {
    return this.code === 'EINVAL' || this.code === DmErrorCode.INVALID_ARGUMENT;
  }
}

/** Name of an errno value, such as `ENXIO` for 6; `E<n>` when Node has no name. */
export function errnoName(errno: number): string {
  // Node returns "Unknown system error -N" for numbers it has no name for.
  const name = getSystemErrorName(-errno);
  return /^E[A-Z0-9]+$/.test(name) ? name : `E${errno}`;
}

/** Short meanings of the errno values device-mapper and loop commands return. */
const ERRNO_MEANINGS: Readonly<Record<string, string>> = {
  ENXIO: 'no such device',
  EBUSY: 'device or resource busy',
  EEXIST: 'already exists',
  ENODATA: 'no data available',
  EINVAL: 'invalid argument',
  ENOTTY: 'not a device-mapper control node',
  ENOENT: 'no such file or directory',
  ENODEV: 'no such device driver',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOMEM: 'out of memory',
  ENOSPC: 'no space left on device',
};

/** Builds the error for a failed system call, with the errno name first in the message. */
export function systemError(errno: number, message: string, options: Omit<DmErrorOptions, 'errno'>): DmError {
  const name = errnoName(errno);
  const meaning = ERRNO_MEANINGS[name];
  const text = meaning ? `${message}: ${name} (${meaning})` : `${message}: ${name}`;
  return new DmError(name, text, { ...options, errno });
}
