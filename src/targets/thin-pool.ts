// The `thin-pool` target (drivers/md/dm-thin.c, Linux 6.1, target 1.22;
// Documentation/admin-guide/device-mapper/thin-provisioning.rst):
//   table:  <metadata dev> <data dev> <data block size> <low water mark> [<#features> <feature>...]
//   status: <transaction id> <used>/<total metadata blocks> <used>/<total data blocks>
//           <held metadata root|-> rw|ro|out_of_data_space
//           discard_passdown|no_discard_passdown|ignore_discard
//           error_if_no_space|queue_if_no_space needs_check|- <metadata low water mark>
//           or `Fail` (the pool is in fail mode) or `Error` (reading the metadata failed).
// Kernels before 4.19 stop after the needs_check field (8 fields).

import type { TargetSpec } from '../ioctl/codec.js';
import { DmError, DmErrorCode } from '../ioctl/errors.js';
import { ArgReader, checkDevice, checkRange, invalidParams, U64_MAX } from './args.js';
import { buildTarget, type Sectors, type TargetType } from './table.js';

/** DATA_DEV_BLOCK_SIZE_MIN_SECTORS: 64 KiB. */
export const THIN_MIN_BLOCK_SIZE = 128n;
/** DATA_DEV_BLOCK_SIZE_MAX_SECTORS: 1 GiB. */
export const THIN_MAX_BLOCK_SIZE = 2097152n;
/** THIN_METADATA_MAX_SECTORS (dm-thin-metadata.h): the kernel uses no metadata beyond about 15.9 GiB. */
export const THIN_METADATA_MAX_SECTORS = 33292800n;
/** Metadata is counted in 4 KiB blocks (THIN_METADATA_BLOCK_SIZE) = 8 sectors. */
export const THIN_METADATA_BLOCK_SECTORS = 8n;

/** Feature arguments in the order emit_flags() in dm-thin.c prints them. */
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
  dataBlockSize: Sectors;
  /** Free data blocks at which the pool raises a dm event (blocks, not sectors). */
  lowWaterMark: bigint;
  /** Feature arguments; written and parsed in the kernel's order, without duplicates. */
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

/** Sorts features into the kernel's order and drops duplicates. */
export function canonicalThinPoolFeatures(features: readonly string[]): ThinPoolFeature[] {
  for (const feature of features) {
    if (!(THIN_POOL_FEATURES as readonly string[]).includes(feature)) invalidParams('thin-pool', `unknown feature ${JSON.stringify(feature)}`);
  }
  return THIN_POOL_FEATURES.filter((feature) => features.includes(feature));
}

export type ThinPoolMode = 'rw' | 'ro' | 'out_of_data_space';
export type ThinPoolDiscard = 'discard_passdown' | 'no_discard_passdown' | 'ignore_discard';
export type ThinPoolNoSpace = 'error_if_no_space' | 'queue_if_no_space';

export const THIN_POOL_MODES: readonly ThinPoolMode[] = ['rw', 'ro', 'out_of_data_space'];
const DISCARD_WORDS: readonly ThinPoolDiscard[] = ['discard_passdown', 'no_discard_passdown', 'ignore_discard'];
const NO_SPACE_WORDS: readonly ThinPoolNoSpace[] = ['error_if_no_space', 'queue_if_no_space'];
/** Fields of a status line up to needs_check, as every kernel since 4.x prints. */
const THIN_POOL_STATUS_MIN_FIELDS = 8;

export interface ThinPoolHealthyStatus {
  state: 'ok';
  transactionId: bigint;
  usedMetadataBlocks: bigint;
  totalMetadataBlocks: bigint;
  usedDataBlocks: bigint;
  totalDataBlocks: bigint;
  /** Root of a reserved metadata snapshot, or undefined for `-`. */
  heldMetadataRoot?: bigint;
  mode: ThinPoolMode;
  discard: ThinPoolDiscard;
  noSpace: ThinPoolNoSpace;
  needsCheck: boolean;
  /** Free metadata blocks below which the pool raises a dm event; printed by 4.19 and later. */
  metadataLowWaterMark?: bigint;
}

export type ThinPoolStatus = { state: 'Fail' } | { state: 'Error' } | ThinPoolHealthyStatus;

function formatThinPoolParams(params: ThinPoolParams): string {
  checkDataBlockSize(params.dataBlockSize);
  checkRange('thin-pool', 'low water mark', params.lowWaterMark, 0n, U64_MAX);
  const features = canonicalThinPoolFeatures(params.features);
  const words = [
    checkDevice('thin-pool', 'metadata device', params.metadataDev),
    checkDevice('thin-pool', 'data device', params.dataDev),
    String(params.dataBlockSize),
    String(params.lowWaterMark),
    String(features.length),
    ...features,
  ];
  return words.join(' ');
}

function parseThinPoolTable(params: string): ThinPoolParams {
  const args = new ArgReader('thin-pool', 'table', params);
  const metadataDev = args.device('metadata device');
  const dataDev = args.device('data device');
  const dataBlockSize = args.sectors('data block size');
  if (dataBlockSize < THIN_MIN_BLOCK_SIZE || dataBlockSize > THIN_MAX_BLOCK_SIZE || dataBlockSize % THIN_MIN_BLOCK_SIZE !== 0n) {
    args.fail(`data block size ${dataBlockSize} is not a multiple of ${THIN_MIN_BLOCK_SIZE} from ${THIN_MIN_BLOCK_SIZE} to ${THIN_MAX_BLOCK_SIZE}`);
  }
  const lowWaterMark = args.integer('low water mark');
  const words = args.remaining > 0 ? args.counted('feature') : [];
  args.end();
  for (const feature of words) {
    if (!(THIN_POOL_FEATURES as readonly string[]).includes(feature)) args.fail(`unknown thin-pool feature ${JSON.stringify(feature)}`);
  }
  return { metadataDev, dataDev, dataBlockSize, lowWaterMark, features: canonicalThinPoolFeatures(words) };
}

function parseThinPoolStatusLine(line: string): ThinPoolStatus {
  const args = new ArgReader('thin-pool', 'status', line);
  if (args.words.length === 1 && (args.words[0] === 'Fail' || args.words[0] === 'Error')) return { state: args.words[0] };
  if (args.words.length < THIN_POOL_STATUS_MIN_FIELDS) {
    args.fail(`a thin-pool status has at least ${THIN_POOL_STATUS_MIN_FIELDS} fields, found ${args.words.length}`);
  }
  const transactionId = args.integer('transaction id');
  const metadata = args.fraction('metadata blocks');
  const data = args.fraction('data blocks');
  const held = args.word('held metadata root');
  const status: ThinPoolHealthyStatus = {
    state: 'ok',
    transactionId,
    usedMetadataBlocks: metadata.used,
    totalMetadataBlocks: metadata.total,
    usedDataBlocks: data.used,
    totalDataBlocks: data.total,
    heldMetadataRoot: held === '-' ? undefined : args.decimal(held, 'held metadata root'),
    mode: args.oneOf('mode', THIN_POOL_MODES),
    discard: args.oneOf('discard field', DISCARD_WORDS),
    noSpace: args.oneOf('no-space field', NO_SPACE_WORDS),
    needsCheck: args.oneOf('needs_check field', ['needs_check', '-']) === 'needs_check',
    metadataLowWaterMark: args.remaining > 0 ? args.integer('metadata low water mark') : undefined,
  };
  // NOTE: fields that later kernels may append after the metadata low water
  // mark are ignored, so a newer kernel's line still parses.
  return status;
}

export const thinPoolType: TargetType<ThinPoolParams, ThinPoolStatus> = {
  name: 'thin-pool',
  module: 'dm_thin_pool',
  formatParams: formatThinPoolParams,
  parseParams: parseThinPoolTable,
  parseStatus: parseThinPoolStatusLine,
};

/** Builds a thin-pool table line. */
export function thinPoolTarget(start: Sectors, length: Sectors, params: ThinPoolParams): TargetSpec {
  return buildTarget(thinPoolType, start, length, params);
}

/** Parses the parameters of a thin-pool table line. */
export function parseThinPoolParams(params: string): ThinPoolParams {
  return thinPoolType.parseParams(params);
}

/** Parses a thin-pool status line. */
export function parseThinPoolStatus(line: string): ThinPoolStatus {
  return thinPoolType.parseStatus(line);
}
