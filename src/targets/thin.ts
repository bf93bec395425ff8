// The `thin` target (drivers/md/dm-thin.c):
//   table:  <pool dev> <dev id> [<external origin dev>]
//   status: <mapped sectors> <highest mapped sector|->, or `Fail`, or `-`
//           when the pool device is not yet bound.

import type { TargetSpec } from '../ioctl/codec.js';
import { parseCount, splitArgs, tableError } from './table.js';

/** Largest thin device id: the pool keeps 24 bits (MAX_DEV_ID). */
export const THIN_MAX_DEV_ID = (1 << 24) - 1;

export interface ThinParams {
  /** Pool device as `major:minor` or a path. */
  poolDev: string;
  /** The 24-bit id the pool knows this volume by. */
  deviceId: number;
  /** A read-only device whose blocks unprovisioned reads return. */
  externalOrigin?: string;
}

/** Builds a thin table line. */
export function thinTarget(start: bigint, length: bigint, params: ThinParams): TargetSpec {
  const words = [params.poolDev, String(params.deviceId)];
  if (params.externalOrigin) words.push(params.externalOrigin);
  return { start, length, type: 'thin', params: words.join(' ') };
}

/** Parses the parameters of a thin table line. */
export function parseThinParams(params: string): ThinParams {
  const words = splitArgs(params);
  if (words.length < 2 || words.length > 3) tableError(params, `thin takes 2 or 3 arguments, found ${words.length}`);
  const deviceId = Number(parseCount(words[1], 'device id', params));
  return { poolDev: words[0], deviceId, ...(words[2] ? { externalOrigin: words[2] } : {}) };
}

export type ThinStatus =
  | { state: 'Fail' }
  | { state: 'unbound' }
  | { state: 'ok'; mappedSectors: bigint; highestMappedSector?: bigint };

/** Parses a thin status line. */
export function parseThinStatus(line: string): ThinStatus {
  const words = splitArgs(line);
  if (words.length === 1 && words[0] === 'Fail') return { state: 'Fail' };
  if (words.length === 1 && words[0] === '-') return { state: 'unbound' };
  if (words.length !== 2) tableError(line, `a thin status has 2 fields, found ${words.length}`);
  return {
    state: 'ok',
    mappedSectors: parseCount(words[0], 'mapped sectors', line),
    highestMappedSector: words[1] === '-' ? undefined : parseCount(words[1], 'highest mapped sector', line),
  };
}
