// Turning library errors into the stderr lines dmsetup prints, which scripts
// match: "device-mapper: OP ioctl on NAME (MAJ:MIN) failed: STRERROR".

import { DmError } from '../index.js';
import { CommandFailure } from './command.js';

/**
 * glibc's strerror() text for the errno values device-mapper returns (Node's
 * own messages are libuv's, in lower case).
 */
const STRERROR: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  ENOTBLK: 'Block device required',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  EINVAL: 'Invalid argument',
  ENOTTY: 'Inappropriate ioctl for device',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  ERANGE: 'Numerical result out of range',
  ENODATA: 'No data available',
  EOPNOTSUPP: 'Operation not supported',
  EAGAIN: 'Resource temporarily unavailable',
  EINTR: 'Interrupted system call',
};

/** libdm's name for each ioctl command, the OP in its error line. */
const LIBDM_COMMAND_NAMES: Readonly<Record<string, string>> = {
  DM_VERSION: 'version',
  DM_REMOVE_ALL: 'remove_all',
  DM_LIST_DEVICES: 'names',
  DM_DEV_CREATE: 'create',
  DM_DEV_REMOVE: 'remove',
  DM_DEV_RENAME: 'rename',
  DM_DEV_SUSPEND: 'suspend',
  DM_DEV_STATUS: 'info',
  DM_DEV_WAIT: 'waitevent',
  DM_TABLE_LOAD: 'reload',
  DM_TABLE_CLEAR: 'clear',
  DM_TABLE_DEPS: 'deps',
  DM_TABLE_STATUS: 'status',
  DM_LIST_VERSIONS: 'versions',
  DM_TARGET_MSG: 'message',
  DM_DEV_SET_GEOMETRY: 'setgeometry',
  DM_GET_TARGET_VERSION: 'target-version',
};

/** strerror() text for an errno name such as `ENXIO`. */
export function strerror(code: string, fallback: string): string {
  return STRERROR[code] ?? fallback;
}

/** The device an error line names: the name, then the uuid or else `(MAJ:MIN)` when known. */
export interface DeviceLabel {
  name?: string;
  uuid?: string;
  major?: number;
  minor?: number;
}

/** Formats libdm's error line for a failed ioctl. */
export function ioctlFailureLine(operation: string, label: DeviceLabel, code: string, fallback: string): string {
  let detail = '';
  if (label.uuid) detail = label.uuid;
  else if (label.major !== undefined && label.minor !== undefined) detail = `(${label.major}:${label.minor})`;
  return `device-mapper: ${operation} ioctl on ${label.name ?? ''} ${detail} failed: ${strerror(code, fallback)}`;
}

/**
 * Runs `action`; a failed ioctl becomes a {@link CommandFailure} with
 * libdm's line, naming the operation as dmsetup does (`resume`, `table`)
 * where one ioctl serves several commands. Other library errors keep their
 * message.
 */
export async function asCommand<T>(operation: string | undefined, label: DeviceLabel, action: () => T | Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    throw toFailure(error, operation, label);
  }
}

/** Converts a library error to a {@link CommandFailure}; other errors pass through. */
export function toFailure(error: unknown, operation: string | undefined, label: DeviceLabel): unknown {
  if (!(error instanceof DmError)) return error;
  if (error.errno === undefined || error.syscall !== 'ioctl' || error.command === undefined) {
    return new CommandFailure(error.message);
  }
  const name = operation ?? LIBDM_COMMAND_NAMES[error.command] ?? error.command;
  return new CommandFailure(ioctlFailureLine(name, label, error.code, error.message));
}
