// The table model: a table is a list of targets that map contiguous sector
// ranges from sector 0. Parsing is lenient about spacing (the kernel and some
// targets print double spaces) and strict about structure.

import type { TargetSpec } from '../ioctl/codec.js';
import { DmError, DmErrorCode } from '../ioctl/errors.js';

/** Bytes in one sector, the unit of every dm table offset and length. */
export const SECTOR_SIZE = 512;

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

/** Parses one `start length type params...` line. */
export function parseTableLine(line: string): TargetSpec {
  const words = splitArgs(line);
  if (words.length < 3) tableError(line, 'expected "<start> <length> <type> [params...]"');
  const start = parseCount(words[0], 'start', line);
  const length = parseCount(words[1], 'length', line);
  if (length === 0n) tableError(line, 'length must be positive');
  return { start, length, type: words[2], params: words.slice(3).join(' ') };
}

/** Parses a multi-line table and checks the targets are contiguous from sector 0. */
export function parseTable(text: string): TargetSpec[] {
  const lines = text.split('\n').filter((line) => line.trim().length > 0);
  const targets = lines.map(parseTableLine);
  let expected = 0n;
  for (const [i, target] of targets.entries()) {
    if (target.start !== expected) {
      const kind = target.start > expected ? 'a gap' : 'an overlap';
      tableError(lines[i], `starts at sector ${target.start} but the previous target ends at ${expected}, which leaves ${kind}`);
    }
    expected += target.length;
  }
  return targets;
}

/** Converts a byte count to sectors, rejecting counts that are not whole sectors. */
export function bytesToSectors(bytes: bigint | number, what = 'size'): bigint {
  const value = BigInt(bytes);
  if (value <= 0n || value % BigInt(SECTOR_SIZE) !== 0n) {
    throw new DmError(
      DmErrorCode.INVALID_ARGUMENT,
      `Invalid ${what} ${value} bytes: it must be a positive multiple of ${SECTOR_SIZE}`,
    );
  }
  return value / BigInt(SECTOR_SIZE);
}
