// Pure encoders and decoders for the device-mapper ioctl structs. Every
// function works on a Buffer and named offsets; nothing here touches the
// kernel. The structs are host-endian (little-endian on every platform Node's
// koffi binary ships for), so the explicit LE accessors match the kernel.

import {
  DM_ALIGNMENT,
  DM_IOCTL_SIZE,
  DM_MAX_TYPE_NAME,
  DM_NAME_LEN,
  DM_NAME_LIST_FLAG_HAS_UUID,
  DM_TARGET_SPEC_SIZE,
  DM_UUID_LEN,
  DmIoctlOffset,
  DmNameListOffset,
  DmTargetDepsOffset,
  DmTargetMsgOffset,
  DmTargetSpecOffset,
  DmTargetVersionsOffset,
} from './constants.js';

export type Version = readonly [number, number, number];

/** Rounds `n` up to the next multiple of 8, the alignment of every dm record. */
export function align8(n: number): number {
  return (n + DM_ALIGNMENT - 1) & ~(DM_ALIGNMENT - 1);
}

/** Device number split as the kernel's MAJOR()/MINOR(). */
export interface DevNumber {
  major: number;
  minor: number;
}

/**
 * Decodes a 64-bit device number in the layout of glibc's gnu_dev_major/minor,
 * which equals the kernel's huge_encode_dev() for every 32-bit dev_t.
 */
export function decodeDev(dev: bigint): DevNumber {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & 0xffffff00n));
  return { major, minor };
}

/** Encodes major:minor as glibc's makedev() does. */
export function encodeDev({ major, minor }: DevNumber): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return (
    ((ma & 0xfffn) << 8n) |
    ((ma & ~0xfffn) << 32n) |
    (mi & 0xffn) |
    ((mi & ~0xffn) << 12n)
  );
}

/** Formats a device number the way the kernel prints it in tables: `major:minor`. */
export function formatDev({ major, minor }: DevNumber): string {
  return `${major}:${minor}`;
}

/** Writes `text` as a NUL-terminated C string in a field of `size` bytes. */
export function writeCString(buf: Buffer, offset: number, size: number, text: string): void {
  const length = Buffer.byteLength(text, 'utf8');
  if (length >= size) {
    throw new RangeError(`String of ${length} bytes does not fit a ${size}-byte field: ${text}`);
  }
  buf.write(text, offset, length, 'utf8');
  buf.fill(0, offset + length, offset + size);
}

/** Reads a NUL-terminated C string starting at `offset`, at most up to `end`. */
export function readCString(buf: Buffer, offset: number, end = buf.length): string {
  let stop = buf.indexOf(0, offset);
  if (stop < 0 || stop > end) stop = end;
  return buf.toString('utf8', offset, stop);
}

/** The fields of `struct dm_ioctl`, decoded. */
export interface DmIoctlHeader {
  version: Version;
  dataSize: number;
  dataStart: number;
  targetCount: number;
  openCount: number;
  flags: number;
  eventNr: number;
  dev: bigint;
  name: string;
  uuid: string;
}

/** Fields a request sets; the rest of the header is zero. */
export interface DmIoctlRequest {
  version: Version;
  /** Total buffer size, header included. */
  dataSize: number;
  /** Offset of the payload; DM_IOCTL_SIZE when the request carries one. */
  dataStart?: number;
  targetCount?: number;
  flags?: number;
  eventNr?: number;
  dev?: bigint;
  name?: string;
  uuid?: string;
}

/** Encodes a `struct dm_ioctl` header into the first 312 bytes of `buf`. */
export function encodeHeader(buf: Buffer, req: DmIoctlRequest): void {
  if (buf.length < req.dataSize || req.dataSize < DM_IOCTL_SIZE) {
    throw new RangeError(`data_size ${req.dataSize} must be at least ${DM_IOCTL_SIZE} and at most the buffer's ${buf.length} bytes`);
  }
  const dataStart = req.dataStart ?? DM_IOCTL_SIZE;
  if (dataStart % DM_ALIGNMENT !== 0) {
    throw new RangeError(`data_start ${dataStart} is not 8-byte aligned`);
  }
  buf.fill(0, 0, DM_IOCTL_SIZE);
  buf.writeUInt32LE(req.version[0], DmIoctlOffset.version);
  buf.writeUInt32LE(req.version[1], DmIoctlOffset.version + 4);
  buf.writeUInt32LE(req.version[2], DmIoctlOffset.version + 8);
  buf.writeUInt32LE(req.dataSize, DmIoctlOffset.data_size);
  buf.writeUInt32LE(dataStart, DmIoctlOffset.data_start);
  // The header is zeroed above, so fields left at zero need no write.
  if (req.targetCount) buf.writeUInt32LE(req.targetCount, DmIoctlOffset.target_count);
  if (req.flags) buf.writeUInt32LE(req.flags >>> 0, DmIoctlOffset.flags);
  if (req.eventNr) buf.writeUInt32LE(req.eventNr >>> 0, DmIoctlOffset.event_nr);
  if (req.dev) buf.writeBigUInt64LE(req.dev, DmIoctlOffset.dev);
  if (req.name) writeCString(buf, DmIoctlOffset.name, DM_NAME_LEN, req.name);
  if (req.uuid) writeCString(buf, DmIoctlOffset.uuid, DM_UUID_LEN, req.uuid);
}

/** Decodes the `struct dm_ioctl` header at the start of `buf`. */
export function decodeHeader(buf: Buffer): DmIoctlHeader {
  return {
    version: [
      buf.readUInt32LE(DmIoctlOffset.version),
      buf.readUInt32LE(DmIoctlOffset.version + 4),
      buf.readUInt32LE(DmIoctlOffset.version + 8),
    ],
    dataSize: buf.readUInt32LE(DmIoctlOffset.data_size),
    dataStart: buf.readUInt32LE(DmIoctlOffset.data_start),
    targetCount: buf.readUInt32LE(DmIoctlOffset.target_count),
    openCount: buf.readInt32LE(DmIoctlOffset.open_count),
    flags: buf.readUInt32LE(DmIoctlOffset.flags),
    eventNr: buf.readUInt32LE(DmIoctlOffset.event_nr),
    dev: buf.readBigUInt64LE(DmIoctlOffset.dev),
    name: readCString(buf, DmIoctlOffset.name, DmIoctlOffset.name + DM_NAME_LEN),
    uuid: readCString(buf, DmIoctlOffset.uuid, DmIoctlOffset.uuid + DM_UUID_LEN),
  };
}

/** One line of a device-mapper table. */
export interface TargetSpec {
  /** First sector this target maps, in 512-byte sectors. */
  start: bigint;
  /** Number of 512-byte sectors this target maps. */
  length: bigint;
  /** Target type name, such as `linear` or `thin-pool`. */
  type: string;
  /** Parameter string, as the kernel prints it in `table`. */
  params: string;
}

/** A target reported by DM_TABLE_STATUS, with its status or table string. */
export interface TargetReply extends TargetSpec {
  /** The spec's `status` field (unused by current kernels, kept as read). */
  status: number;
}

/** Escapes `\` as `\\`, as libdm does before loading parameters. */
export function escapeParams(params: string): string {
  return params.replace(/\\/g, '\\\\');
}

/** Bytes one encoded target spec occupies: header, parameters, NUL, padding. */
export function targetSpecSize(spec: TargetSpec): number {
  return align8(DM_TARGET_SPEC_SIZE + Buffer.byteLength(escapeParams(spec.params), 'utf8') + 1);
}

/**
 * Encodes target specs for DM_TABLE_LOAD at `offset`. On load each `next` is
 * the distance from this spec to the following one. Returns the end offset.
 */
export function encodeTargetSpecs(buf: Buffer, offset: number, specs: readonly TargetSpec[]): number {
  let at = offset;
  for (const spec of specs) {
    if (Buffer.byteLength(spec.type, 'utf8') >= DM_MAX_TYPE_NAME) {
      throw new RangeError(`Target type "${spec.type}" is longer than ${DM_MAX_TYPE_NAME - 1} bytes`);
    }
    const size = targetSpecSize(spec);
    buf.fill(0, at, at + size);
    buf.writeBigUInt64LE(spec.start, at + DmTargetSpecOffset.sector_start);
    buf.writeBigUInt64LE(spec.length, at + DmTargetSpecOffset.length);
    buf.writeInt32LE(0, at + DmTargetSpecOffset.status);
    buf.writeUInt32LE(size, at + DmTargetSpecOffset.next);
    writeCString(buf, at + DmTargetSpecOffset.target_type, DM_MAX_TYPE_NAME, spec.type);
    buf.write(escapeParams(spec.params), at + DM_TARGET_SPEC_SIZE, 'utf8');
    at += size;
  }
  return at;
}

/**
 * Decodes `count` target specs from a DM_TABLE_STATUS reply. In a reply each
 * `next` is an offset from the start of the data area (`dataStart`).
 */
export function decodeTargetSpecs(buf: Buffer, dataStart: number, dataEnd: number, count: number): TargetReply[] {
  const targets: TargetReply[] = [];
  let at = dataStart;
  for (let i = 0; i < count; i++) {
    if (at + DM_TARGET_SPEC_SIZE > dataEnd) {
      throw new RangeError(`Target ${i} at offset ${at} runs past the reply's end ${dataEnd}`);
    }
    targets.push({
      start: buf.readBigUInt64LE(at + DmTargetSpecOffset.sector_start),
      length: buf.readBigUInt64LE(at + DmTargetSpecOffset.length),
      status: buf.readInt32LE(at + DmTargetSpecOffset.status),
      type: readCString(buf, at + DmTargetSpecOffset.target_type, at + DmTargetSpecOffset.target_type + DM_MAX_TYPE_NAME),
      // The kernel leaves a trailing space after some targets' arguments
      // (thin-pool prints "... 0 "), so trailing whitespace is dropped.
      params: readCString(buf, at + DM_TARGET_SPEC_SIZE, dataEnd).trimEnd(),
    });
    at = dataStart + buf.readUInt32LE(at + DmTargetSpecOffset.next);
  }
  return targets;
}

/** One record of a DM_LIST_DEVICES reply. */
export interface NameListEntry {
  name: string;
  dev: bigint;
  /** Present on interface 4.37 and later. */
  eventNr?: number;
  /** Present on interface 4.46 and later when the device has a uuid. */
  uuid?: string;
}

/**
 * Decodes the `struct dm_name_list` chain of a DM_LIST_DEVICES reply.
 * `withEventNr` tells whether the kernel appends event_nr and flags after each
 * name (interface minor 37 and later). A uuid follows when those flags have
 * DM_NAME_LIST_FLAG_HAS_UUID.
 */
export function decodeNameList(buf: Buffer, dataStart: number, dataEnd: number, withEventNr: boolean): NameListEntry[] {
  const entries: NameListEntry[] = [];
  // An empty list is a single zeroed record: dev 0 and next 0.
  if (dataEnd - dataStart < DmNameListOffset.name || buf.readBigUInt64LE(dataStart + DmNameListOffset.dev) === 0n) {
    return entries;
  }
  let at = dataStart;
  for (;;) {
    const next = buf.readUInt32LE(at + DmNameListOffset.next);
    const recordEnd = next === 0 ? dataEnd : at + next;
    const nameStart = at + DmNameListOffset.name;
    let nameEnd = buf.indexOf(0, nameStart);
    if (nameEnd < 0 || nameEnd > recordEnd) nameEnd = recordEnd;
    const name = buf.toString('utf8', nameStart, nameEnd);
    const entry: NameListEntry = { name, dev: buf.readBigUInt64LE(at + DmNameListOffset.dev) };
    if (withEventNr) {
      const extra = align8(nameEnd + 1);
      if (extra + 8 <= recordEnd) {
        entry.eventNr = buf.readUInt32LE(extra);
        const flags = buf.readUInt32LE(extra + 4);
        if (flags & DM_NAME_LIST_FLAG_HAS_UUID) {
          entry.uuid = readCString(buf, extra + 8, recordEnd);
        }
      }
    }
    entries.push(entry);
    if (next === 0) break;
    at += next;
    if (at >= dataEnd) throw new RangeError(`Name list record at ${at} starts past the reply's end ${dataEnd}`);
  }
  return entries;
}

/** One record of a DM_LIST_VERSIONS reply. */
export interface TargetVersion {
  name: string;
  version: Version;
}

/** Decodes the `struct dm_target_versions` chain of a DM_LIST_VERSIONS reply. */
export function decodeTargetVersions(buf: Buffer, dataStart: number, dataEnd: number): TargetVersion[] {
  const versions: TargetVersion[] = [];
  if (dataEnd - dataStart < DmTargetVersionsOffset.name) return versions;
  let at = dataStart;
  for (;;) {
    const next = buf.readUInt32LE(at + DmTargetVersionsOffset.next);
    const recordEnd = next === 0 ? dataEnd : at + next;
    versions.push({
      name: readCString(buf, at + DmTargetVersionsOffset.name, recordEnd),
      version: [
        buf.readUInt32LE(at + DmTargetVersionsOffset.version),
        buf.readUInt32LE(at + DmTargetVersionsOffset.version + 4),
        buf.readUInt32LE(at + DmTargetVersionsOffset.version + 8),
      ],
    });
    if (next === 0) break;
    at += next;
    if (at >= dataEnd) throw new RangeError(`Target version record at ${at} starts past the reply's end ${dataEnd}`);
  }
  return versions;
}

/** Decodes the `struct dm_target_deps` of a DM_TABLE_DEPS reply. */
export function decodeTargetDeps(buf: Buffer, dataStart: number, dataEnd: number): bigint[] {
  if (dataEnd - dataStart < DmTargetDepsOffset.dev) return [];
  const count = buf.readUInt32LE(dataStart + DmTargetDepsOffset.count);
  const devs: bigint[] = [];
  for (let i = 0; i < count; i++) {
    const at = dataStart + DmTargetDepsOffset.dev + i * 8;
    if (at + 8 > dataEnd) throw new RangeError(`Dependency ${i} of ${count} runs past the reply's end ${dataEnd}`);
    devs.push(buf.readBigUInt64LE(at));
  }
  return devs;
}

/** Bytes a `struct dm_target_msg` with `message` occupies, padded to 8. */
export function targetMsgSize(message: string): number {
  return align8(DmTargetMsgOffset.message + Buffer.byteLength(message, 'utf8') + 1);
}

/** Encodes a `struct dm_target_msg` at `offset`; returns the end offset. */
export function encodeTargetMsg(buf: Buffer, offset: number, sector: bigint, message: string): number {
  const size = targetMsgSize(message);
  buf.fill(0, offset, offset + size);
  buf.writeBigUInt64LE(sector, offset + DmTargetMsgOffset.sector);
  buf.write(message, offset + DmTargetMsgOffset.message, 'utf8');
  return offset + size;
}

/** Decodes a `struct dm_target_msg` (used by tests and fixture tools). */
export function decodeTargetMsg(buf: Buffer, offset: number, end: number): { sector: bigint; message: string } {
  return {
    sector: buf.readBigUInt64LE(offset + DmTargetMsgOffset.sector),
    message: readCString(buf, offset + DmTargetMsgOffset.message, end),
  };
}
