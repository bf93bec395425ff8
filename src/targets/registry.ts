// Every target type the library models, by kernel name.

import { cacheType } from './cache.js';
import { cryptType } from './crypt.js';
import { delayType } from './delay.js';
import { flakeyType } from './flakey.js';
import { linearType } from './linear.js';
import { mirrorType } from './mirror.js';
import { snapshotMergeType, snapshotOriginType, snapshotType } from './snapshot.js';
import { stripedType } from './striped.js';
import type { TargetType } from './table.js';
import { thinPoolType } from './thin-pool.js';
import { thinType } from './thin.js';
import { verityType } from './verity.js';
import { writecacheType } from './writecache.js';
import { errorType, zeroType } from './zero.js';

export const TARGET_TYPES: readonly TargetType<unknown, unknown>[] = [
  linearType,
  stripedType,
  zeroType,
  errorType,
  thinPoolType,
  thinType,
  snapshotType,
  snapshotOriginType,
  snapshotMergeType,
  cryptType,
  verityType,
  flakeyType,
  delayType,
  cacheType,
  writecacheType,
  mirrorType,
] as TargetType<unknown, unknown>[];

/** The target type named `name`, or undefined for a type the library does not model. */
export function targetType(name: string): TargetType<unknown, unknown> | undefined {
  return TARGET_TYPES.find((type) => type.name === name);
}
