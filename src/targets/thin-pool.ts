// The `thin-pool` target (drivers/md/dm-thin.c, Documentation/admin-guide/
// device-mapper/thin-provisioning.rst):
//   table:  <metadata dev> <data dev> <data block size> <low water mark> [<#features> <feature>...]
//   status: <transaction id> <used>/<total metadata blocks> <used>/<total data blocks>
//           <held metadata root|-> rw|ro|out_of_data_space [no_]discard_passdown|ignore_discard
//           error_if_no_space|queue_if_no_space needs_check|- [<metadata low water mark>]
//           or `Fail` / `Error` alone.

import type { TargetSpec } from '../ioctl/codec.js';
import { DmError, DmErrorCode } from '../ioctl/errors.js';
import { parseCount, splitArgs, tableError } from './table.js';

/** DATA_DEV_BLOCK_SIZE_MIN_SECTORS: 64 KiB. */
export const THIN_MIN_BLOCK_SIZE = 128n;
/** DATA_DEV_BLOCK_SIZE_MAX_SECTORS: 1 GiB. */
export const THIN_MAX_BLOCK_SIZE = 2097152n;
/** THIN_METADATA_MAX_SECTORS: the kernel ignores metadata beyond about 15.9 GiB. */
export const THIN_METADATA_MAX_SECTORS = 33292800n;
/** Metadata is counted in 4 KiB blocks (THIN_METADATA_BLOCK_SIZE) = 8 sectors. */
export const THIN_METADATA_BLOCK_SECTORS = 8n;

export const THIN_POOL_FEATURES = [
  'skip_block_zeroing',
  'ignore_discard',
  'no_discard_passdown',
  'read_only',
  'error_if_no_space',
] as const;
export type ThinPoolFeature = (typeof THIN_POOL_FEATURES)[number];

export interface ThinPoolParams {
  /** Metadata device as `major:minor` or a path. */
  metadataDev: string;
  dataDev: string;
  /** Data block size in sectors: a multiple of 128 from 128 to 2097152. */
  dataBlockSize: bigint;
  /** Free data blocks at which the pool raises a dm event. */
  lowWaterMark: bigint;
  features: ThinPoolFeature[];
}

/** Throws unless `blockSize` is a data block size the kernel accepts. */
export function checkDataBlockSize(blockSize: bigint): void {
  if (blockSize < THIN_MIN_BLOCK_SIZE || blockSize > THIN_MAX_BLOCK_SIZE || blockSize % THIN_MIN_BLOCK_SIZE !== 0n) {
    throw new DmError(
      DmErrorCode.INVALID_ARGUMENT,
      `Invalid thin-pool data block size ${blockSize} sectors: use a multiple of ${THIN_MIN_BLOCK_SIZE} from ${THIN_MIN_BLOCK_SIZE} to ${THIN_MAX_BLOCK_SIZE}`,
    );
  }
}

/** Builds a thin-pool table line. */
export function thinPoolTarget(start: bigint, length: bigint, params: ThinPoolParams): TargetSpec {
  checkDataBlockSize(params.dataBlockSize);
  const words = [params.metadataDev, params.dataDev, params.dataBlockSize, params.lowWaterMark];
  if (params.features.length > 0) words.push(String(params.features.length), ...params.features);
  else words.push('0');
  return { start, length, type: 'thin-pool', params: words.join(' ') };
}

/** Parses the parameters of a thin-pool table line. */
export function parseThinPoolParams(params: string): ThinPoolParams {
  const words = splitArgs(params);
  if (words.length < 4) tableError(params, `thin-pool takes at least 4 arguments, found ${words.length}`);
  const featureCount = words.length > 4 ? Number(parseCount(words[4], 'feature count', params)) : 0;
  const features = words.slice(5);
  if (features.length !== featureCount) {
    tableError(params, `feature count says ${featureCount} but ${features.length} feature argument(s) follow`);
  }
  for (const feature of features) {
    if (!(THIN_POOL_FEATURES as readonly string[]).includes(feature)) tableError(params, `unknown thin-pool feature ${feature}`);
  }
  return {
    metadataDev: words[0],
    dataDev: words[1],
    dataBlockSize: parseCount(words[2], 'data block size', params),
    lowWaterMark: parseCount(words[3], 'low water mark', params),
    features: features as ThinPoolFeature[],
  };
}

export type ThinPoolMode = 'rw' | 'ro' | 'out_of_data_space';

export type ThinPoolStatus =
  | { state: 'Fail' }
  | { state: 'Error' }
  | {
      state: 'ok';
      transactionId: bigint;
      usedMetadataBlocks: bigint;
      totalMetadataBlocks: bigint;
      usedDataBlocks: bigint;
      totalDataBlocks: bigint;
      /** Root of a reserved metadata snapshot, or undefined for `-`. */
      heldMetadataRoot?: bigint;
      mode: ThinPoolMode;
      discard: 'discard_passdown' | 'no_discard_passdown' | 'ignore_discard';
      noSpace: 'error_if_no_space' | 'queue_if_no_space';
      needsCheck: boolean;
      /** Present on kernels that print it (4.19 and later). */
      metadataLowWaterMark?: bigint;
    };

function parseFraction(word: string | undefined, what: string, line: string): [bigint, bigint] {
  const parts = (word ?? '').split('/');
  if (parts.length !== 2) tableError(line, `${what} must be <used>/<total>, found ${JSON.stringify(word)}`);
  return [parseCount(parts[0], `used ${what}`, line), parseCount(parts[1], `total ${what}`, line)];
}

function oneOf<T extends string>(word: string | undefined, allowed: readonly T[], what: string, line: string): T {
  if (word === undefined || !(allowed as readonly string[]).includes(word)) {
    tableError(line, `${what} must be one of ${allowed.join(', ')}, found ${JSON.stringify(word)}`);
  }
  return word as T;
}

/** Parses a thin-pool status line. */
export function parseThinPoolStatus(line: string): ThinPoolStatus {
  const words = splitArgs(line);
  if (words.length === 1 && (words[0] === 'Fail' || words[0] === 'Error')) return { state: words[0] };
  if (words.length < 8) tableError(line, `a thin-pool status has at least 8 fields, found ${words.length}`);
  const [usedMetadataBlocks, totalMetadataBlocks] = parseFraction(words[1], 'metadata blocks', line);
  const [usedDataBlocks, totalDataBlocks] = parseFraction(words[2], 'data blocks', line);
  const needsCheckWord = oneOf(words[7], ['needs_check', '-'], 'needs_check field', line);
  return {
    state: 'ok',
    transactionId: parseCount(words[0], 'transaction id', line),
    usedMetadataBlocks,
    totalMetadataBlocks,
    usedDataBlocks,
    totalDataBlocks,
    heldMetadataRoot: words[3] === '-' ? undefined : parseCount(words[3], 'held metadata root', line),
    mode: oneOf(words[4], ['rw', 'ro', 'out_of_data_space'], 'mode', line),
    discard: oneOf(words[5], ['discard_passdown', 'no_discard_passdown', 'ignore_discard'], 'discard field', line),
    noSpace: oneOf(words[6], ['error_if_no_space', 'queue_if_no_space'], 'no-space field', line),
    needsCheck: needsCheckWord === 'needs_check',
    metadataLowWaterMark: words[8] === undefined ? undefined : parseCount(words[8], 'metadata low water mark', line),
  };
}
