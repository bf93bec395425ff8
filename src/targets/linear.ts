// The `linear` target (drivers/md/dm-linear.c):
//   table:  <device> <offset>
//   status: empty; the target prints nothing for STATUSTYPE_INFO.

import type { TargetSpec } from '../ioctl/codec.js';
import { ArgReader, checkDevice } from './args.js';
import { buildTarget, type Sectors, type TargetType } from './table.js';

export interface LinearParams {
  /** Backing device as `major:minor` or a path. */
  device: string;
  /** First sector on the backing device. */
  offset: Sectors;
}

/** Targets whose status line is empty. */
export type EmptyStatus = Record<string, never>;

/** Parses a status line that must be empty, as linear, zero, error, crypt and flakey print. */
export function parseEmptyStatus(target: string, line: string): EmptyStatus {
  new ArgReader(target, 'status', line).end();
  return {};
}

export const linearType: TargetType<LinearParams, EmptyStatus> = {
  name: 'linear',
  module: 'dm_mod',
  formatParams(params) {
    return `${checkDevice('linear', 'device', params.device)} ${params.offset}`;
  },
  parseParams(params) {
    const args = new ArgReader('linear', 'table', params);
    const result = { device: args.device('device'), offset: args.sectors('offset') };
    args.end();
    return result;
  },
  parseStatus: (line) => parseEmptyStatus('linear', line),
};

/** Builds a linear table line of `length` sectors starting at `start`. */
export function linearTarget(start: Sectors, length: Sectors, params: LinearParams): TargetSpec {
  return buildTarget(linearType, start, length, params);
}

/** Parses the parameters of a linear table line. */
export function parseLinearParams(params: string): LinearParams {
  return linearType.parseParams(params);
}
