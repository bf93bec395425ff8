// The table model: a table is a list of targets that map contiguous sector
// ranges from sector 0. Parsing is lenient about spacing (the kernel and some
// targets print double spaces and trailing spaces) and strict about structure.

import type { TargetSpec } from '../ioctl/codec.js';
import { DmError, DmErrorCode } from '../ioctl/errors.js';

/** Bytes in one sector (SECTOR_SHIFT 9 in include/linux/blk_types.h), the unit of every dm table offset and length. */
export const SECTOR_SIZE = 512;
const SECTOR_BYTES = BigInt(SECTOR_SIZE);

declare const sectorsBrand: unique symbol;

/**
 * A count of 512-byte sectors. The brand keeps a byte count from being passed
 * where sectors are expected: make one with {@link sectors} or
 * {@link bytesToSectors}.
 */
export type Sectors = bigint & { readonly [sectorsBrand]: 'sectors' };

/** Marks a non-negative integer as a count of 512-byte sectors. */
export function sectors(count: bigint | number, what = 'sector count'): Sectors {
  if (typeof count === 'number' && !Number.isSafeInteger(count)) {
    throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid ${what} ${count}: use a whole number of 512-byte sectors`);
  }
  const value = BigInt(count);
  if (value < 0n) throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid ${what} ${value}: a sector count cannot be negative`);
  return value as Sectors;
}

/** Converts a byte count to sectors, rejecting counts that are not whole, positive sectors. */
export function bytesToSectors(bytes: bigint | number, what = 'size'): Sectors {
  const value = toBigInt(bytes, what);
  if (value <= 0n || value % SECTOR_BYTES !== 0n) {
    throw new DmError(
      DmErrorCode.INVALID_ARGUMENT,
      `Invalid ${what} ${value} bytes: it must be a positive multiple of ${SECTOR_SIZE}`,
    );
  }
  return (value / SECTOR_BYTES) as Sectors;
}

/**
 * Converts the size of an existing file or device to sectors the way the
 * loop driver does: a partial last sector is not counted. Rejects sizes
 * under one sector.
 */
export function bytesToSectorsFloor(bytes: bigint | number, what = 'size'): Sectors {
  const value = toBigInt(bytes, what);
  if (value < SECTOR_BYTES) {
    throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid ${what} ${value} bytes: it is smaller than one ${SECTOR_SIZE}-byte sector`);
  }
  return (value / SECTOR_BYTES) as Sectors;
}

function toBigInt(bytes: bigint | number, what: string): bigint {
  if (typeof bytes === 'number' && !Number.isSafeInteger(bytes)) {
    throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid ${what} ${bytes} bytes: give a whole number of bytes (a safe integer or a bigint)`);
  }
  return BigInt(bytes);
}

/** Bytes in `count` sectors. */
export function sectorsToBytes(count: Sectors): bigint {
  return count * SECTOR_BYTES;
}

/** Splits a parameter string on runs of whitespace, dropping empty words. */
export function splitArgs(params: string): string[] {
  return params.trim().split(/\s+/).filter((word) => word.length > 0);
}

/** Throws the library's table parse error for `line`. */
export function tableError(line: string, why: string): never {
  throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid table line ${JSON.stringify(line)}: ${why}`);
}

/** Parses a non-negative decimal integer word of a table or status line. */
export function parseCount(word: string | undefined, what: string, line: string): bigint {
  if (word === undefined || !/^\d+$/.test(word)) tableError(line, `${what} must be a decimal integer, found ${JSON.stringify(word)}`);
  return BigInt(word);
}

/**
 * One target type: how its parameters are written into a table line, read
 * back from what DM_TABLE_STATUS returns for `table`, and how its status line
 * reads. Every parser throws a DmError with code INVALID_ARGUMENT on input it
 * does not understand.
 */
export interface TargetType<Params, Status> {
  /** The kernel's name of the target, as in `dmsetup targets`. */
  readonly name: string;
  /** Kernel module that provides the target, for `modprobe`. */
  readonly module: string;
  formatParams(params: Params): string;
  parseParams(params: string): Params;
  parseStatus(line: string): Status;
}

/** Builds a table line of target type `type` covering `length` sectors from `start`. */
export function buildTarget<Params>(
  type: TargetType<Params, unknown>,
  start: Sectors,
  length: Sectors,
  params: Params,
): TargetSpec {
  if (length <= 0n) throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid ${type.name} target length ${length} sectors: it must be positive`);
  return { start, length, type: type.name, params: type.formatParams(params) };
}

/** Parses the parameters of `spec`, checking that it is a target of type `type`. */
export function parseTargetParams<Params>(type: TargetType<Params, unknown>, spec: TargetSpec): Params {
  if (spec.type !== type.name) {
    throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Expected a ${type.name} target, found ${JSON.stringify(spec.type)}`);
  }
  return type.parseParams(spec.params);
}

/** Parses one `start length type params...` line. */
export function parseTableLine(line: string): TargetSpec {
  const words = splitArgs(line);
  if (words.length < 3) tableError(line, 'expected "<start> <length> <type> [params...]"');
  const start = parseCount(words[0], 'start', line);
  const length = parseCount(words[1], 'length', line);
  if (length === 0n) tableError(line, 'length must be positive');
  return { start, length, type: words[2], params: words.slice(3).join(' ') };
}

/** Parses a multi-line table and checks the targets are contiguous from sector 0, with no gap and no overlap. */
export function parseTable(text: string): TargetSpec[] {
  const lines = text.split('\n').filter((line) => line.trim().length > 0);
  const targets = lines.map(parseTableLine);
  checkContiguous(targets, (i) => lines[i]);
  return targets;
}

/** Throws unless `targets` cover the sectors from 0 without a gap or an overlap. */
export function checkContiguous(targets: readonly TargetSpec[], lineOf: (index: number) => string = (i) => formatTableLine(targets[i])): void {
  let expected = 0n;
  for (const [i, target] of targets.entries()) {
    if (target.start !== expected) {
      const kind = target.start > expected ? 'a gap' : 'an overlap';
      tableError(lineOf(i), `starts at sector ${target.start} but the previous target ends at ${expected}, which leaves ${kind}`);
    }
    expected += target.length;
  }
}

/** Formats one target the way `dmsetup table` prints it. */
export function formatTableLine(target: TargetSpec): string {
  return `${target.start} ${target.length} ${target.type}${target.params ? ` ${target.params}` : ''}`;
}

/** Formats a table, one line per target, after checking that the targets are contiguous from sector 0. */
export function formatTableText(targets: readonly TargetSpec[]): string {
  checkContiguous(targets);
  return targets.map(formatTableLine).join('\n');
}

/** Total sectors a contiguous table maps. */
export function tableLength(targets: readonly TargetSpec[]): Sectors {
  return targets.reduce((sum, target) => sum + target.length, 0n) as Sectors;
}
