// A cursor over the words of a table or status line. Every target parser
// reads through it, so each malformed line ends in the same typed error: a
// DmError with code INVALID_ARGUMENT that names the target, the field and the
// offending word.

import { DmError, DmErrorCode } from '../ioctl/errors.js';
import { type Sectors, splitArgs } from './table.js';

/** Largest value of a C `unsigned int`, the type of most counts in target constructors. */
export const UINT_MAX = 0xffffffffn;
/** Largest value of a C `u64` (`unsigned long long`). */
export const U64_MAX = 0xffffffffffffffffn;

/** A device as a table names it: `major:minor`, or a path the kernel resolves. */
const DEVICE_PATTERN = /^(\d+:\d+|\/\S+)$/;
const DECIMAL_PATTERN = /^\d+$/;
const HEX_PATTERN = /^([0-9a-fA-F]{2})+$/;

/** Which kind of line a reader parses; it names the line in error messages. */
export type LineKind = 'table' | 'status';

export class ArgReader {
  readonly words: string[];
  #index = 0;

  /**
   * `shown` replaces the line in error messages: crypt passes a copy with
   * the key removed so key material never reaches a message.
   */
  constructor(
    readonly target: string,
    readonly kind: LineKind,
    readonly line: string,
    readonly shown: string = line,
  ) {
    this.words = splitArgs(line);
  }

  /** Words not yet read. */
  get remaining(): number {
    return this.words.length - this.#index;
  }

  /** The next word without reading it. */
  peek(): string | undefined {
    return this.words[this.#index];
  }

  /** Throws the parse error for this line. */
  fail(why: string): never {
    throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid ${this.target} ${this.kind} line ${JSON.stringify(this.shown)}: ${why}`);
  }

  /** Reads the next word; `what` names it when it is missing. */
  word(what: string): string {
    const word = this.words[this.#index];
    if (word === undefined) this.fail(`${what} is missing`);
    this.#index++;
    return word;
  }

  /** Reads a decimal integer from 0 to `max` (default: a u64). */
  integer(what: string, max: bigint = U64_MAX): bigint {
    const word = this.word(what);
    return this.decimal(word, what, max);
  }

  /** Reads a decimal integer that fits a JavaScript number, from 0 to `max`. */
  small(what: string, max: bigint = UINT_MAX): number {
    return Number(this.integer(what, max));
  }

  /** Reads a count of 512-byte sectors. */
  sectors(what: string): Sectors {
    return this.integer(what) as Sectors;
  }

  /** Reads a device word: `major:minor` or an absolute path. */
  device(what: string): string {
    const word = this.word(what);
    if (!DEVICE_PATTERN.test(word)) this.fail(`${what} must be major:minor or an absolute path, found ${JSON.stringify(word)}`);
    return word;
  }

  /** Reads a word that must be one of `allowed`. */
  oneOf<T extends string>(what: string, allowed: readonly T[]): T {
    const word = this.word(what);
    if (!(allowed as readonly string[]).includes(word)) {
      this.fail(`${what} must be one of ${allowed.join(', ')}, found ${JSON.stringify(word)}`);
    }
    return word as T;
  }

  /** Reads a word that must be exactly `expected`. */
  literal(expected: string): void {
    const word = this.word(expected);
    if (word !== expected) this.fail(`expected ${JSON.stringify(expected)}, found ${JSON.stringify(word)}`);
  }

  /** Reads `<used>/<total>`. */
  fraction(what: string): { used: bigint; total: bigint } {
    const word = this.word(what);
    const parts = word.split('/');
    if (parts.length !== 2) this.fail(`${what} must be <used>/<total>, found ${JSON.stringify(word)}`);
    return { used: this.decimal(parts[0], `used ${what}`), total: this.decimal(parts[1], `total ${what}`) };
  }

  /** Reads a hexadecimal byte string; `-` is the empty string when `dashIsEmpty`. */
  hex(what: string, options: { dashIsEmpty?: boolean } = {}): Buffer {
    const word = this.word(what);
    if (options.dashIsEmpty && word === '-') return Buffer.alloc(0);
    if (!HEX_PATTERN.test(word)) this.fail(`${what} must be an even number of hexadecimal digits`);
    return Buffer.from(word, 'hex');
  }

  /** Reads `<count>` followed by that many words, as optional-argument groups are written. */
  counted(what: string, max: bigint = UINT_MAX): string[] {
    const count = this.small(`${what} count`, max);
    if (count > this.remaining) this.fail(`${what} count is ${count} but only ${this.remaining} word(s) follow`);
    const words = this.words.slice(this.#index, this.#index + count);
    this.#index += count;
    return words;
  }

  /** Reads every word left. */
  rest(): string[] {
    const words = this.words.slice(this.#index);
    this.#index = this.words.length;
    return words;
  }

  /** Throws when words are left over. */
  end(): void {
    if (this.remaining > 0) this.fail(`unexpected extra argument(s) ${JSON.stringify(this.words.slice(this.#index).join(' '))}`);
  }

  /** Parses `word` as a decimal integer from 0 to `max`. */
  decimal(word: string, what: string, max: bigint = U64_MAX): bigint {
    if (!DECIMAL_PATTERN.test(word)) this.fail(`${what} must be a decimal integer, found ${JSON.stringify(word)}`);
    const value = BigInt(word);
    if (value > max) this.fail(`${what} ${value} is larger than the maximum ${max}`);
    return value;
  }
}

/** Throws the library's error for a parameter object that no kernel would accept. */
export function invalidParams(target: string, why: string): never {
  throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid ${target} parameters: ${why}`);
}

/** Checks a device word before it goes into a table line. */
export function checkDevice(target: string, what: string, device: string): string {
  if (!DEVICE_PATTERN.test(device)) invalidParams(target, `${what} must be major:minor or an absolute path without spaces, found ${JSON.stringify(device)}`);
  return device;
}

/** Checks that `value` is an integer from `min` to `max` before it goes into a table line. */
export function checkRange(target: string, what: string, value: bigint | number, min: bigint, max: bigint): void {
  let big: bigint | undefined = undefined;
  if (typeof value === 'bigint') big = value;
  else if (Number.isSafeInteger(value)) big = BigInt(value);
  if (big === undefined || big < min || big > max) invalidParams(target, `${what} ${value} is out of range: use an integer from ${min} to ${max}`);
}

/** Checks that a word has no whitespace, so it survives the space-separated table format. */
export function checkWord(target: string, what: string, word: string): string {
  if (word.length === 0 || /\s/.test(word)) invalidParams(target, `${what} must be one non-empty word without spaces, found ${JSON.stringify(word)}`);
  return word;
}
