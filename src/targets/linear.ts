// The `linear` target: `<device> <offset>` maps sectors onto another device.

import type { TargetSpec } from '../ioctl/codec.js';
import { parseCount, splitArgs, tableError } from './table.js';

export interface LinearParams {
  /** Backing device as `major:minor` or a path. */
  device: string;
  /** First sector on the backing device. */
  offset: bigint;
}

/** Builds a linear table line of `length` sectors starting at `start`. */
export function linearTarget(start: bigint, length: bigint, params: LinearParams): TargetSpec {
  return { start, length, type: 'linear', params: `${params.device} ${params.offset}` };
}

/** Parses the parameters of a linear table line. */
export function parseLinearParams(params: string): LinearParams {
  const words = splitArgs(params);
  if (words.length !== 2) tableError(params, `linear takes 2 arguments, found ${words.length}`);
  return { device: words[0], offset: parseCount(words[1], 'offset', params) };
}
