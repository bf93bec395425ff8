// Error codes of the graphdriver layer. Failed system calls keep their errno
// name as the code, as in the rest of the library.

import { DmError, type DmErrorOptions } from '../ioctl/errors.js';

export const GraphDriverErrorCode = {
  /** The requested driver name is not registered. */
  NO_SUCH_DRIVER: 'ERR_GRAPHDRIVER_NO_SUCH_DRIVER',
  /** The driver cannot work on this host (a missing filesystem or kernel feature). */
  NOT_SUPPORTED: 'ERR_GRAPHDRIVER_NOT_SUPPORTED',
  /** The root holds the state of several drivers and no driver was named. */
  AMBIGUOUS_PRIOR_STATE: 'ERR_GRAPHDRIVER_AMBIGUOUS_PRIOR_STATE',
  /** A layer id is empty, too long, or could escape the driver's folder. */
  INVALID_ID: 'ERR_GRAPHDRIVER_INVALID_ID',
  /** The layer (or its parent) does not exist. */
  LAYER_NOT_FOUND: 'ERR_GRAPHDRIVER_LAYER_NOT_FOUND',
  /** A layer with that id already exists. */
  LAYER_EXISTS: 'ERR_GRAPHDRIVER_LAYER_EXISTS',
  /** The layer is mounted, or is the parent of another layer. */
  LAYER_BUSY: 'ERR_GRAPHDRIVER_LAYER_BUSY',
  /** Another process holds the driver's root. */
  ROOT_LOCKED: 'ERR_GRAPHDRIVER_ROOT_LOCKED',
  /** A storage option is unknown or its value is invalid. */
  INVALID_OPTION: 'ERR_GRAPHDRIVER_INVALID_OPTION',
  /** A tar stream is malformed or names a path outside the layer. */
  INVALID_ARCHIVE: 'ERR_GRAPHDRIVER_INVALID_ARCHIVE',
  /** The thin pool has less free space than min_free_space requires. */
  POOL_LOW_ON_SPACE: 'ERR_GRAPHDRIVER_POOL_LOW_ON_SPACE',
  /** The thin pool ran out of data space (mode out_of_data_space). */
  POOL_OUT_OF_DATA_SPACE: 'ERR_GRAPHDRIVER_POOL_OUT_OF_DATA_SPACE',
  /** The pool's transaction id and the stored one disagree in a way rollback cannot fix. */
  TRANSACTION_ID_MISMATCH: 'ERR_GRAPHDRIVER_TRANSACTION_ID_MISMATCH',
  /** The base device is not the one the stored metadata describes. */
  BASE_DEVICE_MISMATCH: 'ERR_GRAPHDRIVER_BASE_DEVICE_MISMATCH',
  /** An outside program (mkfs.ext4) is missing or failed. */
  PROGRAM_FAILED: 'ERR_GRAPHDRIVER_PROGRAM_FAILED',
  /** Stored metadata cannot be parsed. */
  CORRUPT_METADATA: 'ERR_GRAPHDRIVER_CORRUPT_METADATA',
} as const;

/** Builds a DmError with a graphdriver code. */
export function driverError(code: string, message: string, options: DmErrorOptions = {}): DmError {
  return new DmError(code, message, options);
}

/** True when `error` is a Node system error with errno name `code`. */
export function isErrno(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as NodeJS.ErrnoException).code === code;
}
