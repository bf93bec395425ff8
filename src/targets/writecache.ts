// The `writecache` target (drivers/md/dm-writecache.c, Linux 6.1, target 1.6;
// Documentation/admin-guide/device-mapper/writecache.rst):
//   table:  p|s <origin dev> <cache dev> <block size> <#options> <option>...
//   status: <error> <total blocks> <free blocks> <blocks under writeback>
//           then, from target 1.6, <reads> <read hits> <writes>
//           <write hits uncommitted> <write hits committed> <writes around>
//           <writes allocate> <writes blocked on freelist> <flushes> <discards>.
// The kernel prints the options it was given, in its own order; the
// watermarks are recomputed from block counts and may come back rounded.

import { ArgReader, checkDevice, checkRange, invalidParams, U64_MAX, UINT_MAX } from './args.js';
import type { Sectors, TargetType } from './table.js';

/** Percent bound of the watermarks. */
const PERCENT_MAX = 100n;
/** Status fields of target 1.5 and earlier, and of 1.6 and later. */
const WRITECACHE_STATUS_FIELDS_OLD = 4;
const WRITECACHE_STATUS_FIELDS = 14;
/** The error field is 0 or a negative errno (MAX_ERRNO 4095 in include/linux/err.h). */
const ERROR_PATTERN = /^(0|-\d{1,4})$/;
/** Block sizes writecache_ctr() accepts: a power of two from 512 bytes to the page size (4096 on x86-64). */
export const WRITECACHE_MIN_BLOCK_SIZE = 512;
export const WRITECACHE_MAX_BLOCK_SIZE = 4096;

export interface WritecacheOptions {
  /** Offset of the cache area on the cache device, in sectors. */
  startSector?: Sectors;
  /** Percent of used blocks at which writeback starts. */
  highWatermark?: number;
  /** Percent of used blocks at which writeback stops. */
  lowWatermark?: number;
  writebackJobs?: number;
  autocommitBlocks?: number;
  autocommitTimeMs?: number;
  maxAgeMs?: number;
  cleaner?: true;
  /** true: fua, false: nofua (persistent memory only). */
  fua?: boolean;
  metadataOnly?: true;
  pauseWritebackMs?: number;
}

export interface WritecacheParams {
  /** p: persistent memory, s: SSD. */
  mode: 'p' | 's';
  originDevice: string;
  cacheDevice: string;
  /** Block size in bytes: a power of two from 512 to the page size. */
  blockSize: number;
  options: WritecacheOptions;
}

export interface WritecacheStatus {
  /** 0, or the negative errno the cache failed with. */
  error: number;
  totalBlocks: bigint;
  freeBlocks: bigint;
  writebackBlocks: bigint;
  /** Counters printed by target 1.6 and later. */
  stats?: {
    reads: bigint;
    readHits: bigint;
    writes: bigint;
    writeHitsUncommitted: bigint;
    writeHitsCommitted: bigint;
    writesAround: bigint;
    writesAllocate: bigint;
    writesBlockedOnFreelist: bigint;
    flushes: bigint;
    discards: bigint;
  };
}

/** Options with a numeric value, in the order writecache_status() prints them. */
const NUMBER_OPTIONS = [
  ['startSector', 'start_sector', U64_MAX],
  ['highWatermark', 'high_watermark', PERCENT_MAX],
  ['lowWatermark', 'low_watermark', PERCENT_MAX],
  ['writebackJobs', 'writeback_jobs', UINT_MAX],
  ['autocommitBlocks', 'autocommit_blocks', UINT_MAX],
  ['autocommitTimeMs', 'autocommit_time', UINT_MAX],
  ['maxAgeMs', 'max_age', UINT_MAX],
] as const;

function formatOptions(options: WritecacheOptions): string[] {
  const words: string[] = [];
  for (const [field, word, max] of NUMBER_OPTIONS) {
    const value = options[field];
    if (value === undefined) continue;
    checkRange('writecache', word, value, 0n, max);
    words.push(word, String(value));
  }
  if (options.cleaner) words.push('cleaner');
  if (options.fua !== undefined) words.push(options.fua ? 'fua' : 'nofua');
  if (options.metadataOnly) words.push('metadata_only');
  if (options.pauseWritebackMs !== undefined) {
    checkRange('writecache', 'pause_writeback', options.pauseWritebackMs, 0n, UINT_MAX);
    words.push('pause_writeback', String(options.pauseWritebackMs));
  }
  return words;
}

function parseOptions(args: ArgReader, words: string[]): WritecacheOptions {
  const options: WritecacheOptions = {};
  const reader = new ArgReader('writecache', 'table', words.join(' '));
  while (reader.remaining > 0) {
    const word = reader.word('option');
    const numeric = NUMBER_OPTIONS.find(([, name]) => name === word);
    if (numeric) {
      const value = reader.integer(word, numeric[2]);
      if (numeric[0] === 'startSector') options.startSector = value as Sectors;
      else options[numeric[0]] = Number(value);
    } else if (word === 'pause_writeback') {
      options.pauseWritebackMs = reader.small(word);
    } else if (word === 'cleaner') {
      options.cleaner = true;
    } else if (word === 'metadata_only') {
      options.metadataOnly = true;
    } else if (word === 'fua' || word === 'nofua') {
      options.fua = word === 'fua';
    } else {
      args.fail(`unknown option ${JSON.stringify(word)}`);
    }
  }
  return options;
}

export const writecacheType: TargetType<WritecacheParams, WritecacheStatus> = {
  name: 'writecache',
  module: 'dm_writecache',
  formatParams(params) {
    if (params.mode !== 'p' && params.mode !== 's') invalidParams('writecache', `mode must be p or s, found ${JSON.stringify(params.mode)}`);
    const size = params.blockSize;
    if (!Number.isInteger(size) || size < WRITECACHE_MIN_BLOCK_SIZE || size > WRITECACHE_MAX_BLOCK_SIZE || (size & (size - 1)) !== 0) {
      invalidParams('writecache', `block size ${size} must be a power of two from ${WRITECACHE_MIN_BLOCK_SIZE} to ${WRITECACHE_MAX_BLOCK_SIZE} bytes`);
    }
    const options = formatOptions(params.options);
    return [
      params.mode,
      checkDevice('writecache', 'origin device', params.originDevice),
      checkDevice('writecache', 'cache device', params.cacheDevice),
      size,
      options.length,
      ...options,
    ].join(' ');
  },
  parseParams(params) {
    const args = new ArgReader('writecache', 'table', params);
    const mode = args.oneOf('mode', ['p', 's']);
    const originDevice = args.device('origin device');
    const cacheDevice = args.device('cache device');
    const blockSize = args.small('block size', BigInt(WRITECACHE_MAX_BLOCK_SIZE));
    if (blockSize < WRITECACHE_MIN_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
      args.fail(`block size ${blockSize} is not a power of two from ${WRITECACHE_MIN_BLOCK_SIZE}`);
    }
    const options = parseOptions(args, args.counted('option'));
    args.end();
    return { mode, originDevice, cacheDevice, blockSize, options };
  },
  parseStatus(line) {
    const args = new ArgReader('writecache', 'status', line);
    if (args.words.length !== WRITECACHE_STATUS_FIELDS_OLD && args.words.length !== WRITECACHE_STATUS_FIELDS) {
      args.fail(`a writecache status has ${WRITECACHE_STATUS_FIELDS_OLD} or ${WRITECACHE_STATUS_FIELDS} fields, found ${args.words.length}`);
    }
    const errorWord = args.word('error');
    if (!ERROR_PATTERN.test(errorWord)) args.fail(`error must be 0 or a negative errno, found ${JSON.stringify(errorWord)}`);
    const status: WritecacheStatus = {
      error: Number(errorWord),
      totalBlocks: args.integer('total blocks'),
      freeBlocks: args.integer('free blocks'),
      writebackBlocks: args.integer('blocks under writeback'),
    };
    if (args.remaining > 0) {
      status.stats = {
        reads: args.integer('reads'),
        readHits: args.integer('read hits'),
        writes: args.integer('writes'),
        writeHitsUncommitted: args.integer('uncommitted write hits'),
        writeHitsCommitted: args.integer('committed write hits'),
        writesAround: args.integer('writes around'),
        writesAllocate: args.integer('writes allocate'),
        writesBlockedOnFreelist: args.integer('writes blocked on freelist'),
        flushes: args.integer('flushes'),
        discards: args.integer('discards'),
      };
    }
    args.end();
    return status;
  },
};
