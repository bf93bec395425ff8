// Loop device kernel ABI, mirrored from include/uapi/linux/loop.h (Linux 6.1).

import { readCString, writeCString } from './codec.js';

// Requests on /dev/loopN.
export const LOOP_SET_FD = 0x4c00;
export const LOOP_CLR_FD = 0x4c01;
export const LOOP_SET_STATUS64 = 0x4c04;
export const LOOP_GET_STATUS64 = 0x4c05;
export const LOOP_SET_CAPACITY = 0x4c07;
/** LOOP_CONFIGURE: fd and status in one call, Linux 5.8 and later. */
export const LOOP_CONFIGURE = 0x4c0a;

// Requests on /dev/loop-control.
export const LOOP_CTL_ADD = 0x4c80;
export const LOOP_CTL_REMOVE = 0x4c81;
export const LOOP_CTL_GET_FREE = 0x4c82;

// lo_flags bits.
export const LO_FLAGS_READ_ONLY = 1;
export const LO_FLAGS_AUTOCLEAR = 4;
export const LO_FLAGS_PARTSCAN = 8;
export const LO_FLAGS_DIRECT_IO = 16;

/** LO_NAME_SIZE: bytes of lo_file_name, so a longer path is cut at 63 bytes. */
export const LO_NAME_SIZE = 64;

/** Block major number of loop devices (LOOP_MAJOR). */
export const LOOP_MAJOR = 7;
/** /dev/loop-control is misc device 10:237 (LOOP_CTRL_MINOR). */
export const LOOP_CTRL_MAJOR = 10;
export const LOOP_CTRL_MINOR = 237;

/** `struct loop_info64` layout: 232 bytes. */
export const LoopInfo64Offset = {
  lo_device: 0, // __u64
  lo_inode: 8, // __u64
  lo_rdevice: 16, // __u64
  lo_offset: 24, // __u64
  lo_sizelimit: 32, // __u64: 0 means up to the end of the file
  lo_number: 40, // __u32
  lo_encrypt_type: 44, // __u32
  lo_encrypt_key_size: 48, // __u32
  lo_flags: 52, // __u32
  lo_file_name: 56, // __u8[LO_NAME_SIZE]
  lo_crypt_name: 120, // __u8[LO_NAME_SIZE]
  lo_encrypt_key: 184, // __u8[LO_KEY_SIZE = 32]
  lo_init: 216, // __u64[2]
} as const;
export const LOOP_INFO64_SIZE = 232;

/** `struct loop_config` layout: 304 bytes. */
export const LoopConfigOffset = {
  fd: 0, // __u32
  block_size: 4, // __u32: 0 keeps the default 512
  info: 8, // struct loop_info64
  reserved: 240, // __u64 __reserved[8]
} as const;
export const LOOP_CONFIG_SIZE = 304;

/** The fields of `struct loop_info64` the library reads and writes. */
export interface LoopInfo {
  device: bigint;
  inode: bigint;
  offset: bigint;
  sizeLimit: bigint;
  number: number;
  flags: number;
  fileName: string;
}

/** Encodes `struct loop_info64` at `offset`; the file name is cut to 63 bytes as the kernel keeps it. */
export function encodeLoopInfo(buf: Buffer, offset: number, info: Partial<LoopInfo>): void {
  buf.fill(0, offset, offset + LOOP_INFO64_SIZE);
  buf.writeBigUInt64LE(info.offset ?? 0n, offset + LoopInfo64Offset.lo_offset);
  buf.writeBigUInt64LE(info.sizeLimit ?? 0n, offset + LoopInfo64Offset.lo_sizelimit);
  buf.writeUInt32LE(info.flags ?? 0, offset + LoopInfo64Offset.lo_flags);
  if (info.fileName) {
    writeCString(buf, offset + LoopInfo64Offset.lo_file_name, LO_NAME_SIZE, truncateUtf8(info.fileName, LO_NAME_SIZE - 1));
  }
}

/** Decodes `struct loop_info64` at `offset`. */
export function decodeLoopInfo(buf: Buffer, offset = 0): LoopInfo {
  return {
    device: buf.readBigUInt64LE(offset + LoopInfo64Offset.lo_device),
    inode: buf.readBigUInt64LE(offset + LoopInfo64Offset.lo_inode),
    offset: buf.readBigUInt64LE(offset + LoopInfo64Offset.lo_offset),
    sizeLimit: buf.readBigUInt64LE(offset + LoopInfo64Offset.lo_sizelimit),
    number: buf.readUInt32LE(offset + LoopInfo64Offset.lo_number),
    flags: buf.readUInt32LE(offset + LoopInfo64Offset.lo_flags),
    fileName: readCString(buf, offset + LoopInfo64Offset.lo_file_name, offset + LoopInfo64Offset.lo_file_name + LO_NAME_SIZE),
  };
}

/** Encodes `struct loop_config` for LOOP_CONFIGURE. */
export function encodeLoopConfig(fd: number, info: Partial<LoopInfo>, blockSize = 0): Buffer {
  const buf = Buffer.alloc(LOOP_CONFIG_SIZE);
  buf.writeUInt32LE(fd, LoopConfigOffset.fd);
  buf.writeUInt32LE(blockSize, LoopConfigOffset.block_size);
  encodeLoopInfo(buf, LoopConfigOffset.info, info);
  return buf;
}

/** Cuts `text` to at most `maxBytes` UTF-8 bytes without splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // Step back over continuation bytes (10xxxxxx) so no character is split.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end);
}
