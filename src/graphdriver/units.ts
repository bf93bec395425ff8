// Sizes as Docker's storage options write them ("10G", "64M": binary
// multiples) and as `docker info` printed them ("65.54 kB": decimal, four
// significant digits).

import { GraphDriverErrorCode, driverError } from './errors.js';

const BINARY_MULTIPLIERS: Record<string, bigint> = {
  '': 1n,
  k: 1024n,
  m: 1024n ** 2n,
  g: 1024n ** 3n,
  t: 1024n ** 4n,
  p: 1024n ** 5n,
};

const SIZE_PATTERN = /^(\d+)\s?([kKmMgGtTpP]?)[iI]?[bB]?$/;

/** Parses a size such as `10G`, `64MiB` or `1048576` into bytes, with binary multipliers. */
export function parseSize(text: string, option: string): bigint {
  const match = SIZE_PATTERN.exec(text.trim());
  if (!match) {
    throw driverError(
      GraphDriverErrorCode.INVALID_OPTION,
      `Invalid size ${JSON.stringify(text)} for ${option}: use a whole number with an optional unit k, M, G, T or P (powers of 1024)`,
    );
  }
  return BigInt(match[1]) * BINARY_MULTIPLIERS[match[2].toLowerCase()];
}

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];

/** Formats bytes with decimal units and four significant digits, as `docker info` does. */
export function humanSize(bytes: bigint | number): string {
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1000 && unit < DECIMAL_UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${Number(value.toPrecision(4))} ${DECIMAL_UNITS[unit]}`;
}
