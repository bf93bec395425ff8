// The `crypt` target (drivers/md/dm-crypt.c, Linux 6.1, target 1.24;
// Documentation/admin-guide/device-mapper/dm-crypt.rst):
//   table:  <cipher> <key> <iv offset> <device> <offset> [<#options> <option>...]
//   where <key> is hexadecimal bytes, `:<key size>:<key type>:<description>`
//   for a key in the kernel keyring, or `-` for a cipher without a key.
//   status: empty.
// The table the kernel returns contains the key: load and read crypt tables
// with DM_SECURE_DATA_FLAG, and never log them. Parse errors here show the
// line with the key replaced.

import { ArgReader, checkDevice, checkRange, checkWord, invalidParams, U64_MAX } from './args.js';
import { type EmptyStatus, parseEmptyStatus } from './linear.js';
import type { Sectors, TargetType } from './table.js';

/** Key types crypt_set_keyring_key() accepts. */
export const CRYPT_KEY_TYPES = ['logon', 'user', 'encrypted', 'trusted'] as const;
export type CryptKeyType = (typeof CRYPT_KEY_TYPES)[number];

/** Encryption sector sizes crypt_ctr_optional() accepts: a power of two from 512 to 4096 bytes. */
export const CRYPT_MIN_SECTOR_SIZE = 512;
export const CRYPT_MAX_SECTOR_SIZE = 4096;

export type CryptKey =
  | { kind: 'hex'; key: Buffer }
  | { kind: 'keyring'; keySize: number; keyType: CryptKeyType; description: string }
  | { kind: 'none' };

export interface CryptOptions {
  allowDiscards?: true;
  sameCpuCrypt?: true;
  submitFromCryptCpus?: true;
  noReadWorkqueue?: true;
  noWriteWorkqueue?: true;
  /** Authenticated encryption: bytes of tag per sector and the AEAD type (`aead` or a hash). */
  integrity?: { bytes: number; type: string };
  /** Encryption sector size in bytes. */
  sectorSize?: number;
  /** IVs count in `sectorSize` units instead of 512-byte sectors. */
  ivLargeSectors?: true;
}

export interface CryptParams {
  /** Cipher specification, such as `aes-xts-plain64` or `capi:xts(aes)-plain64`. */
  cipher: string;
  key: CryptKey;
  /** Added to the sector number when computing the IV. */
  ivOffset: Sectors;
  device: string;
  offset: Sectors;
  options: CryptOptions;
}

/** Word of each flag option, in the order crypt_status() prints them. */
const FLAG_OPTIONS = [
  ['allowDiscards', 'allow_discards'],
  ['sameCpuCrypt', 'same_cpu_crypt'],
  ['submitFromCryptCpus', 'submit_from_crypt_cpus'],
  ['noReadWorkqueue', 'no_read_workqueue'],
  ['noWriteWorkqueue', 'no_write_workqueue'],
] as const;
const INTEGRITY_PREFIX = 'integrity:';
const SECTOR_SIZE_PREFIX = 'sector_size:';
const IV_LARGE_SECTORS = 'iv_large_sectors';
const KEYRING_PATTERN = /^:(\d+):([^:]+):(.+)$/;
const HEX_KEY_PATTERN = /^([0-9a-fA-F]{2})+$/;
const KEY_HIDDEN = '<key hidden>';

function formatKey(key: CryptKey): string {
  switch (key.kind) {
    case 'hex':
      if (key.key.length === 0) invalidParams('crypt', 'a hex key needs at least one byte; use kind "none" for a cipher without a key');
      return key.key.toString('hex');
    case 'keyring':
      checkRange('crypt', 'key size', key.keySize, 1n, 0xffffffffn);
      if (!CRYPT_KEY_TYPES.includes(key.keyType)) invalidParams('crypt', `key type must be one of ${CRYPT_KEY_TYPES.join(', ')}, found ${JSON.stringify(key.keyType)}`);
      checkWord('crypt', 'key description', key.description);
      return `:${key.keySize}:${key.keyType}:${key.description}`;
    case 'none':
      return '-';
  }
}

function formatOptions(options: CryptOptions): string[] {
  const words: string[] = [];
  for (const [field, word] of FLAG_OPTIONS) if (options[field]) words.push(word);
  if (options.integrity !== undefined) {
    checkRange('crypt', 'integrity tag bytes', options.integrity.bytes, 1n, 0xffffffffn);
    words.push(`${INTEGRITY_PREFIX}${options.integrity.bytes}:${checkWord('crypt', 'integrity type', options.integrity.type)}`);
  }
  if (options.sectorSize !== undefined) {
    checkSectorSize(options.sectorSize);
    words.push(`${SECTOR_SIZE_PREFIX}${options.sectorSize}`);
  }
  if (options.ivLargeSectors) words.push(IV_LARGE_SECTORS);
  return words;
}

function checkSectorSize(size: number): void {
  const valid = Number.isInteger(size) && size >= CRYPT_MIN_SECTOR_SIZE && size <= CRYPT_MAX_SECTOR_SIZE && (size & (size - 1)) === 0;
  if (!valid) invalidParams('crypt', `sector size ${size} must be a power of two from ${CRYPT_MIN_SECTOR_SIZE} to ${CRYPT_MAX_SECTOR_SIZE} bytes`);
}

function formatCryptParams(params: CryptParams): string {
  const words = [
    checkWord('crypt', 'cipher', params.cipher),
    formatKey(params.key),
    String(params.ivOffset),
    checkDevice('crypt', 'device', params.device),
    String(params.offset),
  ];
  checkRange('crypt', 'IV offset', params.ivOffset, 0n, U64_MAX);
  const options = formatOptions(params.options);
  if (options.length > 0) words.push(String(options.length), ...options);
  return words.join(' ');
}

/** The line with its key word replaced, for error messages. */
function hideKey(params: string): string {
  const words = params.trim().split(/\s+/);
  if (words.length > 1) words[1] = KEY_HIDDEN;
  return words.join(' ');
}

function parseKey(args: ArgReader): CryptKey {
  const word = args.word('key');
  if (word === '-') return { kind: 'none' };
  const keyring = KEYRING_PATTERN.exec(word);
  if (keyring) {
    const keyType = keyring[2];
    if (!(CRYPT_KEY_TYPES as readonly string[]).includes(keyType)) args.fail(`key type must be one of ${CRYPT_KEY_TYPES.join(', ')}`);
    const keySize = Number(args.decimal(keyring[1], 'key size', 0xffffffffn));
    if (keySize === 0) args.fail('key size must be positive');
    return { kind: 'keyring', keySize, keyType: keyType as CryptKeyType, description: keyring[3] };
  }
  // The key itself never goes into the message.
  if (!HEX_KEY_PATTERN.test(word)) args.fail('key must be hexadecimal bytes, :<size>:<type>:<description> or -');
  return { kind: 'hex', key: Buffer.from(word, 'hex') };
}

function parseOptions(args: ArgReader, words: string[]): CryptOptions {
  const options: CryptOptions = {};
  for (const word of words) {
    const flag = FLAG_OPTIONS.find(([, name]) => name === word);
    if (flag) {
      options[flag[0]] = true;
    } else if (word === IV_LARGE_SECTORS) {
      options.ivLargeSectors = true;
    } else if (word.startsWith(INTEGRITY_PREFIX)) {
      const [bytes, ...typeParts] = word.slice(INTEGRITY_PREFIX.length).split(':');
      const type = typeParts.join(':');
      const tagBytes = Number(args.decimal(bytes, 'integrity tag bytes', 0xffffffffn));
      if (tagBytes === 0 || type.length === 0) args.fail(`integrity option must be integrity:<bytes>:<type>, found ${JSON.stringify(word)}`);
      options.integrity = { bytes: tagBytes, type };
    } else if (word.startsWith(SECTOR_SIZE_PREFIX)) {
      const size = Number(args.decimal(word.slice(SECTOR_SIZE_PREFIX.length), 'sector size', BigInt(CRYPT_MAX_SECTOR_SIZE)));
      if (size < CRYPT_MIN_SECTOR_SIZE || (size & (size - 1)) !== 0) args.fail(`sector size ${size} must be a power of two from ${CRYPT_MIN_SECTOR_SIZE} to ${CRYPT_MAX_SECTOR_SIZE}`);
      options.sectorSize = size;
    } else {
      args.fail(`unknown option ${JSON.stringify(word)}`);
    }
  }
  return options;
}

function parseCryptParams(params: string): CryptParams {
  const args = new ArgReader('crypt', 'table', params, hideKey(params));
  const cipher = args.word('cipher');
  const key = parseKey(args);
  const ivOffset = args.sectors('IV offset');
  const device = args.device('device');
  const offset = args.sectors('offset');
  const options = args.remaining > 0 ? parseOptions(args, args.counted('option')) : {};
  args.end();
  return { cipher, key, ivOffset, device, offset, options };
}

export const cryptType: TargetType<CryptParams, EmptyStatus> = {
  name: 'crypt',
  module: 'dm_crypt',
  formatParams: formatCryptParams,
  parseParams: parseCryptParams,
  parseStatus: (line) => parseEmptyStatus('crypt', line),
};
