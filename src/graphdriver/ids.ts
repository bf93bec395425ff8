// Layer ids become folder names and dm device names, so they are checked
// before any path is joined: nothing may escape the driver's folder.

import { GraphDriverErrorCode, driverError } from './errors.js';

/** Longest layer id accepted; Docker's ids are 64 hex digits, `<id>-init` 69 bytes. */
export const MAX_LAYER_ID_LENGTH = 96;

const LAYER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Throws unless `id` is a usable layer id: 1 to 96 characters of
 * [A-Za-z0-9_.-] starting with a letter or digit, so never `.`, `..`, a
 * path separator or a NUL byte.
 */
export function checkLayerId(id: string, what = 'layer id'): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_LAYER_ID_LENGTH || !LAYER_ID_PATTERN.test(id)) {
    throw driverError(
      GraphDriverErrorCode.INVALID_ID,
      `Invalid ${what} ${JSON.stringify(id)}: use 1 to ${MAX_LAYER_ID_LENGTH} characters of [A-Za-z0-9_.-] starting with a letter or digit`,
    );
  }
}
