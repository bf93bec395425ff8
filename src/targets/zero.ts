// The `zero` target (drivers/md/dm-zero.c) returns zeros on read and drops
// writes, and the `error` target (drivers/md/dm-target.c) fails every I/O.
// Neither takes an argument or prints a status.

import { ArgReader } from './args.js';
import { type EmptyStatus, parseEmptyStatus } from './linear.js';
import type { TargetType } from './table.js';

/** Parameters of a target that takes none. */
export type NoParams = Record<string, never>;

function noParamsTarget(name: string, module: string): TargetType<NoParams, EmptyStatus> {
  return {
    name,
    module,
    formatParams: () => '',
    parseParams(params) {
      new ArgReader(name, 'table', params).end();
      return {};
    },
    parseStatus: (line) => parseEmptyStatus(name, line),
  };
}

export const zeroType = noParamsTarget('zero', 'dm_zero');
export const errorType = noParamsTarget('error', 'dm_mod');
