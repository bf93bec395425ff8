// ustar headers (POSIX.1-1988, as extended by POSIX.1-2001 pax) packed in
// 512-byte blocks. Names longer than the ustar fields, large numbers,
// sub-second times and xattrs (SCHILY.xattr.<name>, the key GNU tar and
// Docker's archive package use) go into a pax extended header ('x') before
// the entry.

import { GraphDriverErrorCode, driverError } from '../errors.js';

export const BLOCK_SIZE = 512;

/** Field offsets and lengths of the ustar header (tar.h). */
export const Field = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  checksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

/** TMAGIC and TVERSION. */
const USTAR_MAGIC = 'ustar\0';
const USTAR_VERSION = '00';
/** GNU tar's magic ("ustar  \0" across magic and version). */
const GNU_MAGIC = 'ustar  \0';

/** typeflag values (tar.h, and 'x'/'g' from pax, 'L'/'K' from GNU tar). */
export const TypeFlag = {
  REGTYPE: '0',
  AREGTYPE: '\0',
  LNKTYPE: '1',
  SYMTYPE: '2',
  CHRTYPE: '3',
  BLKTYPE: '4',
  DIRTYPE: '5',
  FIFOTYPE: '6',
  CONTTYPE: '7',
  XHDTYPE: 'x',
  XGLTYPE: 'g',
  GNU_LONGNAME: 'L',
  GNU_LONGLINK: 'K',
} as const;

export type EntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo';

const TYPE_TO_FLAG: Record<EntryType, string> = {
  file: TypeFlag.REGTYPE,
  link: TypeFlag.LNKTYPE,
  symlink: TypeFlag.SYMTYPE,
  'character-device': TypeFlag.CHRTYPE,
  'block-device': TypeFlag.BLKTYPE,
  directory: TypeFlag.DIRTYPE,
  fifo: TypeFlag.FIFOTYPE,
};

/** One archive member as the reader returns it and the writer takes it. */
export interface TarHeader {
  /** Path inside the archive, without a leading `/`; directories may end in `/`. */
  name: string;
  type: EntryType;
  /** Permission bits and set-id/sticky bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow; 0 for everything but regular files. */
  size: number;
  /** Modification time in nanoseconds since the epoch. */
  mtimeNs: bigint;
  /** Target of a symlink, or the archive path a hard link points to. */
  linkname?: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes by full name, such as `security.capability`. */
  xattrs?: Record<string, Buffer>;
}

const PAX_XATTR_PREFIX = 'SCHILY.xattr.';
const NS_PER_SECOND = 1_000_000_000n;
/** Largest value an octal field of `length` bytes holds with its NUL terminator. */
function octalLimit(length: number): number {
  return 8 ** (length - 1) - 1;
}

function invalid(message: string): never {
  throw driverError(GraphDriverErrorCode.INVALID_ARCHIVE, message);
}

function writeString(block: Buffer, [offset, length]: readonly [number, number], value: string): void {
  block.write(value, offset, length, 'utf8');
}

function writeOctal(block: Buffer, [offset, length]: readonly [number, number], value: number): void {
  const text = value.toString(8).padStart(length - 1, '0');
  block.write(text, offset, length - 1, 'ascii');
}

function fitsField(value: string, length: number): boolean {
  return Buffer.byteLength(value, 'utf8') <= length;
}

/** Splits a long path into ustar prefix and name at a `/`, or returns undefined. */
function splitUstarName(name: string): { prefix: string; name: string } | undefined {
  if (fitsField(name, Field.name[1])) return { prefix: '', name };
  for (let slash = name.indexOf('/'); slash > 0; slash = name.indexOf('/', slash + 1)) {
    const prefix = name.slice(0, slash);
    const rest = name.slice(slash + 1);
    if (fitsField(prefix, Field.prefix[1]) && fitsField(rest, Field.name[1]) && rest.length > 0) return { prefix, name: rest };
  }
  return undefined;
}

/** One pax record: `<length> <key>=<value>\n`, the length counting itself. */
export function paxRecord(key: string, value: Buffer | string): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), Buffer.from(value), Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length), 'ascii'), body]);
}

/** Parses pax records into a map; xattr values stay raw bytes. */
export function parsePaxRecords(data: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space < 0) invalid(`Invalid pax record at byte ${offset}: no length`);
    const length = Number(data.toString('ascii', offset, space));
    if (!Number.isInteger(length) || length <= space - offset || offset + length > data.length) {
      invalid(`Invalid pax record length ${JSON.stringify(data.toString('ascii', offset, space))} at byte ${offset}`);
    }
    const record = data.subarray(space + 1, offset + length - 1);
    const equals = record.indexOf(0x3d);
    if (equals < 0) invalid(`Invalid pax record at byte ${offset}: no "="`);
    records.set(record.toString('utf8', 0, equals), record.subarray(equals + 1));
    offset += length;
  }
  return records;
}

function formatPaxTime(ns: bigint): string {
  const seconds = ns / NS_PER_SECOND;
  const fraction = ns % NS_PER_SECOND;
  if (fraction === 0n) return String(seconds);
  return `${seconds}.${String(fraction).padStart(9, '0')}`;
}

function parsePaxTime(text: string): bigint {
  const match = /^(-?\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) invalid(`Invalid pax time ${JSON.stringify(text)}`);
  const fraction = (match[2] ?? '').slice(0, 9).padEnd(9, '0');
  return BigInt(match[1]) * NS_PER_SECOND + BigInt(fraction);
}

/** Writes the checksum: the byte sum with the checksum field read as spaces. */
function writeChecksum(block: Buffer): void {
  block.fill(0x20, Field.checksum[0], Field.checksum[0] + Field.checksum[1]);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, Field.checksum[0], 'ascii');
}

function ustarBlock(fields: {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  writeString(block, Field.name, fields.name);
  writeOctal(block, Field.mode, fields.mode);
  writeOctal(block, Field.uid, fields.uid);
  writeOctal(block, Field.gid, fields.gid);
  writeOctal(block, Field.size, fields.size);
  writeOctal(block, Field.mtime, fields.mtime);
  writeString(block, Field.typeflag, fields.typeflag);
  writeString(block, Field.linkname, fields.linkname);
  writeString(block, Field.magic, USTAR_MAGIC);
  writeString(block, Field.version, USTAR_VERSION);
  writeString(block, Field.uname, fields.uname);
  writeString(block, Field.gname, fields.gname);
  writeOctal(block, Field.devmajor, fields.devmajor);
  writeOctal(block, Field.devminor, fields.devminor);
  writeString(block, Field.prefix, fields.prefix);
  writeChecksum(block);
  return block;
}

function padding(size: number): number {
  return (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
}

/** Bytes of zeros that pad `size` bytes of data to whole blocks. */
export function paddingSize(size: number): number {
  return padding(size);
}

/**
 * Encodes the header blocks of one entry: a pax header when some value does
 * not fit ustar, then the ustar header.
 */
export function encodeHeader(header: TarHeader): Buffer {
  const records: Buffer[] = [];
  const name = header.type === 'directory' && !header.name.endsWith('/') ? `${header.name}/` : header.name;
  let split = splitUstarName(name);
  if (!split) {
    records.push(paxRecord('path', name));
    split = { prefix: '', name: Buffer.from(name, 'utf8').subarray(0, Field.name[1]).toString('utf8').replace(/\uFFFD+$/, '') };
  }
  let linkname = header.linkname ?? '';
  if (!fitsField(linkname, Field.linkname[1])) {
    records.push(paxRecord('linkpath', linkname));
    linkname = '';
  }
  const numeric = (key: string, value: number, field: readonly [number, number]): number => {
    if (value <= octalLimit(field[1])) return value;
    records.push(paxRecord(key, String(value)));
    return 0;
  };
  const size = numeric('size', header.size, Field.size);
  const uid = numeric('uid', header.uid, Field.uid);
  const gid = numeric('gid', header.gid, Field.gid);
  const mtimeSeconds = Number(header.mtimeNs / NS_PER_SECOND);
  if (header.mtimeNs % NS_PER_SECOND !== 0n || mtimeSeconds < 0 || mtimeSeconds > octalLimit(Field.mtime[1])) {
    records.push(paxRecord('mtime', formatPaxTime(header.mtimeNs)));
  }
  for (const [key, value] of Object.entries(header.xattrs ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    records.push(paxRecord(`${PAX_XATTR_PREFIX}${key}`, value));
  }
  const uname = header.uname ?? '';
  const gname = header.gname ?? '';
  const block = ustarBlock({
    name: split.name,
    prefix: split.prefix,
    mode: header.mode & 0o7777,
    uid,
    gid,
    size,
    mtime: Math.min(Math.max(mtimeSeconds, 0), octalLimit(Field.mtime[1])),
    typeflag: TYPE_TO_FLAG[header.type],
    linkname,
    uname: fitsField(uname, Field.uname[1]) ? uname : '',
    gname: fitsField(gname, Field.gname[1]) ? gname : '',
    devmajor: header.devmajor ?? 0,
    devminor: header.devminor ?? 0,
  });
  if (records.length === 0) return block;
  const pax = Buffer.concat(records);
  const paxName = `PaxHeaders/${Buffer.from(split.name, 'utf8').subarray(0, Field.name[1] - 'PaxHeaders/'.length).toString('utf8')}`;
  const paxBlock = ustarBlock({
    name: paxName.replace(/\uFFFD+$/, ''),
    prefix: '',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: pax.length,
    mtime: 0,
    typeflag: TypeFlag.XHDTYPE,
    linkname: '',
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxBlock, pax, Buffer.alloc(padding(pax.length)), block]);
}

function readString(block: Buffer, [offset, length]: readonly [number, number]): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.toString('utf8', 0, end < 0 ? length : end);
}

/** Reads an octal field, or a GNU base-256 field (high bit of the first byte set). */
function readNumber(block: Buffer, field: readonly [number, number], what: string): number {
  const [offset, length] = field;
  if (block[offset] & 0x80) {
    let value = BigInt(block[offset] & 0x7f);
    for (let i = 1; i < length; i++) value = (value << 8n) | BigInt(block[offset + i]);
    return Number(value);
  }
  const text = block.toString('ascii', offset, offset + length).replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) invalid(`Invalid tar header: ${what} field ${JSON.stringify(text)} is not octal`);
  return parseInt(text, 8);
}

/** The fields of one raw header block, before pax and GNU records are applied. */
export interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

/** True when the block is all zeros (the end-of-archive marker is two of them). */
export function isZeroBlock(block: Buffer): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

/** Decodes and checks one header block. */
export function decodeBlock(block: Buffer): RawHeader {
  const stored = readNumber(block, Field.checksum, 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const inChecksum = i >= Field.checksum[0] && i < Field.checksum[0] + Field.checksum[1];
    sum += inChecksum ? 0x20 : block[i];
  }
  if (sum !== stored) invalid(`Invalid tar header: checksum ${stored} does not match the computed ${sum}; the stream is not a tar archive or is corrupt`);
  const magic = block.toString('binary', Field.magic[0], Field.magic[0] + Field.magic[1] + Field.version[1]);
  const isUstar = magic.startsWith('ustar');
  const prefix = isUstar && !magic.startsWith(GNU_MAGIC) ? readString(block, Field.prefix) : '';
  const name = readString(block, Field.name);
  return {
    name: prefix ? `${prefix}/${name}` : name,
    mode: readNumber(block, Field.mode, 'mode'),
    uid: readNumber(block, Field.uid, 'uid'),
    gid: readNumber(block, Field.gid, 'gid'),
    size: readNumber(block, Field.size, 'size'),
    mtime: readNumber(block, Field.mtime, 'mtime'),
    typeflag: String.fromCharCode(block[Field.typeflag[0]]),
    linkname: readString(block, Field.linkname),
    uname: isUstar ? readString(block, Field.uname) : '',
    gname: isUstar ? readString(block, Field.gname) : '',
    devmajor: isUstar ? readNumber(block, Field.devmajor, 'devmajor') : 0,
    devminor: isUstar ? readNumber(block, Field.devminor, 'devminor') : 0,
  };
}

function entryType(typeflag: string, name: string): EntryType {
  switch (typeflag) {
    case TypeFlag.REGTYPE:
    case TypeFlag.AREGTYPE:
    case TypeFlag.CONTTYPE:
      return name.endsWith('/') ? 'directory' : 'file';
    case TypeFlag.LNKTYPE:
      return 'link';
    case TypeFlag.SYMTYPE:
      return 'symlink';
    case TypeFlag.CHRTYPE:
      return 'character-device';
    case TypeFlag.BLKTYPE:
      return 'block-device';
    case TypeFlag.DIRTYPE:
      return 'directory';
    case TypeFlag.FIFOTYPE:
      return 'fifo';
    default:
      return invalid(`Unsupported tar entry type ${JSON.stringify(typeflag)} for ${JSON.stringify(name)}`);
  }
}

/** Combines a raw header with the pax records (and GNU long names) that preceded it. */
export function finishHeader(raw: RawHeader, pax: Map<string, Buffer>, longName?: string, longLink?: string): TarHeader {
  const text = (key: string): string | undefined => pax.get(key)?.toString('utf8');
  const numberOf = (key: string, fallback: number): number => {
    const value = text(key);
    if (value === undefined) return fallback;
    const parsed = Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < 0) invalid(`Invalid pax ${key} ${JSON.stringify(value)}`);
    return parsed;
  };
  const name = text('path') ?? longName ?? raw.name;
  const mtime = text('mtime');
  const xattrs: Record<string, Buffer> = {};
  for (const [key, value] of pax) {
    if (key.startsWith(PAX_XATTR_PREFIX)) xattrs[key.slice(PAX_XATTR_PREFIX.length)] = value;
  }
  const type = entryType(raw.typeflag, name);
  const header: TarHeader = {
    name,
    type,
    mode: raw.mode & 0o7777,
    uid: numberOf('uid', raw.uid),
    gid: numberOf('gid', raw.gid),
    size: numberOf('size', raw.size),
    mtimeNs: mtime === undefined ? BigInt(raw.mtime) * NS_PER_SECOND : parsePaxTime(mtime),
    uname: text('uname') ?? raw.uname,
    gname: text('gname') ?? raw.gname,
    devmajor: raw.devmajor,
    devminor: raw.devminor,
  };
  const linkname = text('linkpath') ?? longLink ?? raw.linkname;
  if (linkname) header.linkname = linkname;
  if (Object.keys(xattrs).length > 0) header.xattrs = xattrs;
  return header;
}
