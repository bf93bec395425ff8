// Errors of the thin-pool layer. They are DmErrors, so callers that check
// `instanceof DmError` and `code` keep working; the subclasses carry the
// numbers a caller needs to act on.

import { DmError, DmErrorCode, type DmErrorOptions } from '../ioctl/errors.js';

export const POOL_LOW_ON_SPACE = DmErrorCode.POOL_LOW_ON_SPACE;
export const POOL_OUT_OF_DATA_SPACE = DmErrorCode.POOL_OUT_OF_DATA_SPACE;
export const POOL_UNHEALTHY = DmErrorCode.POOL_UNHEALTHY;
export const TRANSACTION_ID_MISMATCH = DmErrorCode.TRANSACTION_ID_MISMATCH;
export const THIN_IDS_EXHAUSTED = DmErrorCode.THIN_IDS_EXHAUSTED;

/** The pool has too few free blocks for a new volume or snapshot. */
export class PoolSpaceError extends DmError {
  override name = 'PoolSpaceError';

  constructor(
    code: typeof POOL_LOW_ON_SPACE | typeof POOL_OUT_OF_DATA_SPACE,
    message: string,
    /** Which space ran short. */
    readonly resource: 'data' | 'metadata',
    /** Free blocks the pool reported. */
    readonly free: bigint,
    /** Free blocks the guard requires; 0 for out_of_data_space. */
    readonly required: bigint,
    options: DmErrorOptions = {},
  ) {
    super(code, message, options);
  }
}

/** The pool's transaction id differs from the one the caller expected. */
export class TransactionIdMismatchError extends DmError {
  override name = 'TransactionIdMismatchError';

  constructor(
    message: string,
    /** The current id the caller passed. */
    readonly expected: bigint,
    /** The id the pool reports, read from its status. */
    readonly actual: bigint,
    options: DmErrorOptions = {},
  ) {
    super(TRANSACTION_ID_MISMATCH, message, options);
  }
}
