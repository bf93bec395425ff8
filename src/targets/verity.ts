// The `verity` target (drivers/md/dm-verity-target.c, Linux 6.1, target 1.8;
// Documentation/admin-guide/device-mapper/verity.rst):
//   table:  <version> <data dev> <hash dev> <data block size> <hash block size>
//           <#data blocks> <hash start block> <algorithm> <root digest> <salt|->
//           [<#options> <option>...]
//   status: V (verified so far) or C (a block failed verification). Newer
//           kernels than 6.1 may append the count of blocks FEC corrected, or `-`.
// The kernel rejects a verity table unless the device is read-only: load it
// with the read-only flag.

import { ArgReader, checkDevice, checkRange, checkWord, invalidParams, U64_MAX, UINT_MAX } from './args.js';
import type { TargetType } from './table.js';

/** Hash format versions: 0 hashes block then salt (Chrome OS), 1 hashes salt then block. */
export type VerityVersion = 0 | 1;

/** Block sizes verity_ctr() accepts: a power of two from 512 bytes to the page size (4096 on x86-64). */
export const VERITY_MIN_BLOCK_SIZE = 512;
export const VERITY_MAX_BLOCK_SIZE = 4096;

export interface VerityParams {
  version: VerityVersion;
  dataDevice: string;
  hashDevice: string;
  /** Bytes per data block. */
  dataBlockSize: number;
  /** Bytes per hash block. */
  hashBlockSize: number;
  /** Number of data blocks (of dataBlockSize) the hash tree covers. */
  dataBlocks: bigint;
  /** Block (of hashBlockSize) of the hash device where the tree starts. */
  hashStartBlock: bigint;
  /** Hash algorithm, such as `sha256`. */
  algorithm: string;
  rootDigest: Buffer;
  /** Empty for no salt (`-`). */
  salt: Buffer;
  /**
   * Optional arguments as the kernel prints them, such as
   * `restart_on_corruption`, `ignore_zero_blocks`, `check_at_most_once`,
   * `use_fec_from_device <dev>`, `fec_roots <n>`.
   */
  options: string[];
}

export interface VerityStatus {
  /** False once a block failed verification (the kernel prints C). */
  verified: boolean;
  /** Blocks FEC corrected, on kernels that print it; null for `-`. */
  fecCorrected?: bigint | null;
}

function checkBlockSize(what: string, size: number): void {
  const valid = Number.isInteger(size) && size >= VERITY_MIN_BLOCK_SIZE && size <= VERITY_MAX_BLOCK_SIZE && (size & (size - 1)) === 0;
  if (!valid) invalidParams('verity', `${what} ${size} must be a power of two from ${VERITY_MIN_BLOCK_SIZE} to ${VERITY_MAX_BLOCK_SIZE} bytes`);
}

export const verityType: TargetType<VerityParams, VerityStatus> = {
  name: 'verity',
  module: 'dm_verity',
  formatParams(params) {
    if (params.version !== 0 && params.version !== 1) invalidParams('verity', `version must be 0 or 1, found ${params.version}`);
    checkBlockSize('data block size', params.dataBlockSize);
    checkBlockSize('hash block size', params.hashBlockSize);
    checkRange('verity', 'data block count', params.dataBlocks, 1n, U64_MAX);
    checkRange('verity', 'hash start block', params.hashStartBlock, 0n, U64_MAX);
    if (params.rootDigest.length === 0) invalidParams('verity', 'the root digest is empty');
    for (const option of params.options) checkWord('verity', 'option', option);
    const words = [
      String(params.version),
      checkDevice('verity', 'data device', params.dataDevice),
      checkDevice('verity', 'hash device', params.hashDevice),
      String(params.dataBlockSize),
      String(params.hashBlockSize),
      String(params.dataBlocks),
      String(params.hashStartBlock),
      checkWord('verity', 'algorithm', params.algorithm),
      params.rootDigest.toString('hex'),
      params.salt.length === 0 ? '-' : params.salt.toString('hex'),
    ];
    if (params.options.length > 0) words.push(String(params.options.length), ...params.options);
    return words.join(' ');
  },
  parseParams(params) {
    const args = new ArgReader('verity', 'table', params);
    const version = args.small('version', 1n) as VerityVersion;
    const dataDevice = args.device('data device');
    const hashDevice = args.device('hash device');
    const dataBlockSize = args.small('data block size', BigInt(VERITY_MAX_BLOCK_SIZE));
    const hashBlockSize = args.small('hash block size', BigInt(VERITY_MAX_BLOCK_SIZE));
    for (const [what, size] of [['data block size', dataBlockSize], ['hash block size', hashBlockSize]] as const) {
      if (size < VERITY_MIN_BLOCK_SIZE || (size & (size - 1)) !== 0) args.fail(`${what} ${size} is not a power of two from ${VERITY_MIN_BLOCK_SIZE}`);
    }
    const dataBlocks = args.integer('data block count');
    if (dataBlocks === 0n) args.fail('data block count must be positive');
    const hashStartBlock = args.integer('hash start block');
    const algorithm = args.word('algorithm');
    const rootDigest = args.hex('root digest');
    const salt = args.hex('salt', { dashIsEmpty: true });
    const options = args.remaining > 0 ? args.counted('option', UINT_MAX) : [];
    args.end();
    return { version, dataDevice, hashDevice, dataBlockSize, hashBlockSize, dataBlocks, hashStartBlock, algorithm, rootDigest, salt, options };
  },
  parseStatus(line) {
    const args = new ArgReader('verity', 'status', line);
    const verified = args.oneOf('verification state', ['V', 'C']) === 'V';
    if (args.remaining === 0) return { verified };
    const fec = args.word('FEC corrected blocks');
    args.end();
    return { verified, fecCorrected: fec === '-' ? null : args.decimal(fec, 'FEC corrected blocks') };
  },
};
