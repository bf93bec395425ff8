// The `thin` target (drivers/md/dm-thin.c, Linux 6.1):
//   table:  <pool dev> <dev id> [<external origin dev>]
//   status: <mapped sectors> <highest mapped sector|->, or `Fail` when the
//           pool is in fail mode, `Error` when reading the pool's metadata
//           failed, or `-` when the thin device is not open in the pool.

import type { TargetSpec } from '../ioctl/codec.js';
import { ArgReader, checkDevice, checkRange } from './args.js';
import { buildTarget, type Sectors, type TargetType } from './table.js';

/** Largest thin device id: the pool keeps 24 bits (MAX_DEV_ID). */
export const THIN_MAX_DEV_ID = (1 << 24) - 1;

export interface ThinParams {
  /** Pool device as `major:minor` or a path. */
  poolDev: string;
  /** The 24-bit id the pool knows this volume by. */
  deviceId: number;
  /** A read-only device whose blocks are returned for reads of unprovisioned blocks. */
  externalOrigin?: string;
}

export type ThinStatus =
  | { state: 'Fail' }
  | { state: 'Error' }
  | { state: 'unbound' }
  | { state: 'ok'; mappedSectors: Sectors; highestMappedSector?: Sectors };

export const thinType: TargetType<ThinParams, ThinStatus> = {
  name: 'thin',
  module: 'dm_thin_pool',
  formatParams(params) {
    checkRange('thin', 'device id', params.deviceId, 0n, BigInt(THIN_MAX_DEV_ID));
    const words = [checkDevice('thin', 'pool device', params.poolDev), String(params.deviceId)];
    if (params.externalOrigin !== undefined) words.push(checkDevice('thin', 'external origin', params.externalOrigin));
    return words.join(' ');
  },
  parseParams(params) {
    const args = new ArgReader('thin', 'table', params);
    const poolDev = args.device('pool device');
    const deviceId = args.small('device id', BigInt(THIN_MAX_DEV_ID));
    const externalOrigin = args.remaining > 0 ? args.device('external origin') : undefined;
    args.end();
    return externalOrigin === undefined ? { poolDev, deviceId } : { poolDev, deviceId, externalOrigin };
  },
  parseStatus(line) {
    const args = new ArgReader('thin', 'status', line);
    if (args.words.length === 1 && (args.words[0] === 'Fail' || args.words[0] === 'Error')) return { state: args.words[0] };
    if (args.words.length === 1 && args.words[0] === '-') return { state: 'unbound' };
    const mappedSectors = args.sectors('mapped sectors');
    const highest = args.word('highest mapped sector');
    args.end();
    const status: ThinStatus = { state: 'ok', mappedSectors };
    if (highest !== '-') status.highestMappedSector = args.decimal(highest, 'highest mapped sector') as Sectors;
    return status;
  },
};

/** Builds a thin table line. */
export function thinTarget(start: Sectors, length: Sectors, params: ThinParams): TargetSpec {
  return buildTarget(thinType, start, length, params);
}

/** Parses the parameters of a thin table line. */
export function parseThinParams(params: string): ThinParams {
  return thinType.parseParams(params);
}

/** Parses a thin status line. */
export function parseThinStatus(line: string): ThinStatus {
  return thinType.parseStatus(line);
}
