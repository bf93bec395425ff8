// The `cache` target (drivers/md/dm-cache-target.c, Linux 6.1, target 2.2;
// Documentation/admin-guide/device-mapper/cache.rst):
//   table:  <metadata dev> <cache dev> <origin dev> <block size>
//           <#features> <feature>... <policy> <#policy args> <policy arg>...
//   status: <metadata block size> <used>/<total metadata blocks> <cache block size>
//           <used>/<total cache blocks> <read hits> <read misses> <write hits>
//           <write misses> <demotions> <promotions> <dirty> <#features> <feature>...
//           <#core args> <core arg>... <policy> <#policy args> <policy arg>...
//           rw|ro needs_check|-
//           or `Fail` (fail mode) or `Error` (reading the metadata failed).
// The kernel returns the constructor's arguments after the three devices
// unchanged in `table`.

import { ArgReader, checkDevice, checkRange, checkWord, invalidParams, UINT_MAX } from './args.js';
import type { Sectors, TargetType } from './table.js';

/** Cache block sizes cache_ctr() accepts: multiples of 64 sectors (DATA_DEV_BLOCK_SIZE_MIN_SECTORS) up to 1 GiB. */
export const CACHE_MIN_BLOCK_SIZE = 64n;
export const CACHE_MAX_BLOCK_SIZE = 2097152n;

export type CacheIoMode = 'writeback' | 'writethrough' | 'passthrough';
const IO_MODES: readonly CacheIoMode[] = ['writeback', 'writethrough', 'passthrough'];

export interface CacheParams {
  metadataDevice: string;
  cacheDevice: string;
  originDevice: string;
  /** Cache block size in sectors. */
  blockSize: Sectors;
  /** Use metadata format 2. */
  metadata2?: true;
  /** Omitted: the kernel's default, writeback. */
  ioMode?: CacheIoMode;
  noDiscardPassdown?: true;
  /** Policy name, such as `smq`, `mq` or `cleaner`. */
  policy: string;
  /** Policy arguments as key value pairs, such as `migration_threshold 2048`. */
  policyArgs: string[];
}

export interface CacheHealthyStatus {
  state: 'ok';
  /** Metadata block size in sectors. */
  metadataBlockSize: Sectors;
  usedMetadataBlocks: bigint;
  totalMetadataBlocks: bigint;
  /** Cache block size in sectors. */
  cacheBlockSize: Sectors;
  usedCacheBlocks: bigint;
  totalCacheBlocks: bigint;
  readHits: bigint;
  readMisses: bigint;
  writeHits: bigint;
  writeMisses: bigint;
  demotions: bigint;
  promotions: bigint;
  dirty: bigint;
  features: string[];
  coreArgs: string[];
  policy: string;
  policyArgs: string[];
  mode: 'rw' | 'ro';
  needsCheck: boolean;
}

export type CacheStatus = { state: 'Fail' } | { state: 'Error' } | CacheHealthyStatus;

function checkBlockSize(blockSize: bigint, fail: (why: string) => never): void {
  if (blockSize < CACHE_MIN_BLOCK_SIZE || blockSize > CACHE_MAX_BLOCK_SIZE || blockSize % CACHE_MIN_BLOCK_SIZE !== 0n) {
    fail(`block size ${blockSize} sectors must be a multiple of ${CACHE_MIN_BLOCK_SIZE} from ${CACHE_MIN_BLOCK_SIZE} to ${CACHE_MAX_BLOCK_SIZE}`);
  }
}

export const cacheType: TargetType<CacheParams, CacheStatus> = {
  name: 'cache',
  module: 'dm_cache',
  formatParams(params) {
    checkBlockSize(params.blockSize, (why) => invalidParams('cache', why));
    const features: string[] = [];
    if (params.metadata2) features.push('metadata2');
    if (params.ioMode !== undefined) {
      if (!IO_MODES.includes(params.ioMode)) invalidParams('cache', `I/O mode must be one of ${IO_MODES.join(', ')}, found ${JSON.stringify(params.ioMode)}`);
      features.push(params.ioMode);
    }
    if (params.noDiscardPassdown) features.push('no_discard_passdown');
    if (params.policyArgs.length % 2 !== 0) invalidParams('cache', `policy arguments come in key value pairs, found ${params.policyArgs.length} words`);
    for (const word of params.policyArgs) checkWord('cache', 'policy argument', word);
    checkRange('cache', 'policy argument count', params.policyArgs.length, 0n, UINT_MAX);
    return [
      checkDevice('cache', 'metadata device', params.metadataDevice),
      checkDevice('cache', 'cache device', params.cacheDevice),
      checkDevice('cache', 'origin device', params.originDevice),
      params.blockSize,
      features.length,
      ...features,
      checkWord('cache', 'policy', params.policy),
      params.policyArgs.length,
      ...params.policyArgs,
    ].join(' ');
  },
  parseParams(params) {
    const args = new ArgReader('cache', 'table', params);
    const result: CacheParams = {
      metadataDevice: args.device('metadata device'),
      cacheDevice: args.device('cache device'),
      originDevice: args.device('origin device'),
      blockSize: args.sectors('block size'),
      policy: '',
      policyArgs: [],
    };
    checkBlockSize(result.blockSize, (why) => args.fail(why));
    for (const feature of args.counted('feature')) {
      if (feature === 'metadata2') result.metadata2 = true;
      else if (feature === 'no_discard_passdown') result.noDiscardPassdown = true;
      else if ((IO_MODES as readonly string[]).includes(feature)) {
        if (result.ioMode !== undefined) args.fail('more than one I/O mode');
        result.ioMode = feature as CacheIoMode;
      } else args.fail(`unknown feature ${JSON.stringify(feature)}`);
    }
    result.policy = args.word('policy');
    result.policyArgs = args.counted('policy argument');
    if (result.policyArgs.length % 2 !== 0) args.fail('policy arguments come in key value pairs');
    args.end();
    return result;
  },
  parseStatus(line) {
    const args = new ArgReader('cache', 'status', line);
    if (args.words.length === 1 && (args.words[0] === 'Fail' || args.words[0] === 'Error')) return { state: args.words[0] };
    const metadataBlockSize = args.sectors('metadata block size');
    const metadata = args.fraction('metadata blocks');
    const cacheBlockSize = args.sectors('cache block size');
    const blocks = args.fraction('cache blocks');
    const status: CacheHealthyStatus = {
      state: 'ok',
      metadataBlockSize,
      usedMetadataBlocks: metadata.used,
      totalMetadataBlocks: metadata.total,
      cacheBlockSize,
      usedCacheBlocks: blocks.used,
      totalCacheBlocks: blocks.total,
      readHits: args.integer('read hits'),
      readMisses: args.integer('read misses'),
      writeHits: args.integer('write hits'),
      writeMisses: args.integer('write misses'),
      demotions: args.integer('demotions'),
      promotions: args.integer('promotions'),
      dirty: args.integer('dirty blocks'),
      features: args.counted('feature'),
      coreArgs: args.counted('core argument'),
      policy: args.word('policy'),
      policyArgs: args.counted('policy argument'),
      mode: args.oneOf('metadata mode', ['rw', 'ro']),
      needsCheck: args.oneOf('needs_check field', ['needs_check', '-']) === 'needs_check',
    };
    args.end();
    return status;
  },
};
