// File metadata beyond what Node's fs module covers: xattrs, device nodes and
// nanosecond times, through the driver's libc binding.

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';

import { systemError } from '../../ioctl/errors.js';
import { driverLibc, XATTR_LIST_MAX, XATTR_SIZE_MAX } from '../sys.js';

const { ENOTSUP, ENODATA, ERANGE } = osConstants.errno;

/** sys/stat.h file type bits. */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;
/** Permission, set-id and sticky bits. */
export const MODE_PERMISSIONS = 0o7777;

/** Extended attributes of `file` (not following symlinks); empty where the filesystem has none. */
export function readXattrs(file: string): Record<string, Buffer> {
  const libc = driverLibc();
  const list = Buffer.alloc(XATTR_LIST_MAX);
  const length = libc.llistxattr(file, list, list.length);
  if (length === -ENOTSUP) return {};
  if (length < 0) throw systemError(-length, `Listing the xattrs of ${file} failed`, { syscall: 'llistxattr', path: file });
  const xattrs: Record<string, Buffer> = {};
  const value = Buffer.alloc(XATTR_SIZE_MAX);
  for (const name of list.toString('utf8', 0, length).split('\0')) {
    if (name === '') continue;
    const size = libc.lgetxattr(file, name, value, value.length);
    // The attribute may vanish between list and get; skip it then.
    if (size === -ENODATA) continue;
    if (size < 0 && size !== -ERANGE) throw systemError(-size, `Reading xattr ${name} of ${file} failed`, { syscall: 'lgetxattr', path: file });
    if (size >= 0) xattrs[name] = Buffer.from(value.subarray(0, size));
  }
  return xattrs;
}

/** Sets each xattr on `file` (not following symlinks). */
export function writeXattrs(file: string, xattrs: Record<string, Buffer>): void {
  const libc = driverLibc();
  for (const [name, value] of Object.entries(xattrs)) {
    const result = libc.lsetxattr(file, name, value, value.length, 0);
    if (result < 0) throw systemError(-result, `Setting xattr ${name} on ${file} failed`, { syscall: 'lsetxattr', path: file });
  }
}

/** Makes a device node or FIFO at `file`. */
export function makeNode(file: string, mode: number, major: number, minor: number): void {
  const dev = (BigInt(major & 0xfffff000) << 32n) | (BigInt(major & 0xfff) << 8n) | (BigInt(minor & 0xffffff00) << 12n) | BigInt(minor & 0xff);
  const result = driverLibc().mknod(file, mode, dev);
  if (result < 0) throw systemError(-result, `Creating node ${file} (${major}:${minor}) failed`, { syscall: 'mknod', path: file });
}

/** Major and minor numbers of a dev_t as Linux encodes it (new_decode_dev). */
export function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

/** Sets access and modification times in nanoseconds, on the link itself for symlinks. */
export function setTimes(file: string, atimeNs: bigint, mtimeNs: bigint): void {
  const result = driverLibc().lutimens(file, atimeNs, mtimeNs);
  if (result < 0) throw systemError(-result, `Setting the times of ${file} failed`, { syscall: 'utimensat', path: file });
}

/** Owner, mode, xattrs and times of `stat` applied to `file`, in an order that keeps set-id bits. */
export function applyMetadata(
  file: string,
  meta: { uid: number; gid: number; mode: number; isSymlink: boolean; atimeNs: bigint; mtimeNs: bigint; xattrs?: Record<string, Buffer> },
): void {
  fs.lchownSync(file, meta.uid, meta.gid);
  // chmod after chown: chown clears set-id bits. Linux has no lchmod; a symlink's mode is fixed.
  if (!meta.isSymlink) fs.chmodSync(file, meta.mode & MODE_PERMISSIONS);
  if (meta.xattrs) writeXattrs(file, meta.xattrs);
  setTimes(file, meta.atimeNs, meta.mtimeNs);
}
