// The libc calls the drivers need and Node has no API for: flock(2) and the
// l*xattr(2) family. Each wrapper returns the result when it is not negative
// and `-errno` when the call failed, like the binding in src/ioctl/libc.ts.
// NOTE: these belong in src/ioctl/libc.ts; they live here until that binding
// grows them, and load libc through koffi the same way.

import { createRequire } from 'node:module';

/** sys/file.h: flock(2) operations. */
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** Largest xattr name list and value Linux allows (XATTR_LIST_MAX, XATTR_SIZE_MAX in linux/limits.h). */
export const XATTR_LIST_MAX = 65536;
export const XATTR_SIZE_MAX = 65536;

export interface DriverLibc {
  flock(fd: number, operation: number): number;
  /** llistxattr(path, list, size): names, each NUL-terminated. */
  llistxattr(path: string, list: Buffer, size: number): number;
  lgetxattr(path: string, name: string, value: Buffer, size: number): number;
  lsetxattr(path: string, name: string, value: Buffer, size: number, flags: number): number;
  /** mknod(path, mode, dev), for device nodes and whiteouts. */
  mknod(path: string, mode: number, dev: bigint): number;
  /**
   * utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) with nanosecond
   * times, which Node's utimes rounds through a double.
   */
  lutimens(path: string, atimeNs: bigint, mtimeNs: bigint): number;
}

/** fcntl.h: AT_FDCWD and AT_SYMLINK_NOFOLLOW. */
const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
/** struct timespec on 64-bit Linux: tv_sec and tv_nsec, 8 bytes each. */
const TIMESPEC_SIZE = 16;
const NS_PER_SECOND = 1_000_000_000n;

function encodeTimespecs(atimeNs: bigint, mtimeNs: bigint): Buffer {
  const buf = Buffer.alloc(2 * TIMESPEC_SIZE);
  for (const [index, ns] of [atimeNs, mtimeNs].entries()) {
    const seconds = ns >= 0n ? ns / NS_PER_SECOND : -((-ns + NS_PER_SECOND - 1n) / NS_PER_SECOND);
    buf.writeBigInt64LE(seconds, index * TIMESPEC_SIZE);
    buf.writeBigInt64LE(ns - seconds * NS_PER_SECOND, index * TIMESPEC_SIZE + 8);
  }
  return buf;
}

interface KoffiModule {
  load(path: string): { func(signature: string): (...args: unknown[]) => number | bigint };
  errno(): number;
}

let loaded: DriverLibc | undefined;

/** Loads the binding once. */
export function driverLibc(): DriverLibc {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as KoffiModule;
  const lib = koffi.load('libc.so.6');
  const flock = lib.func('int flock(int fd, int operation)');
  const llistxattr = lib.func('intptr_t llistxattr(const char *path, _Out_ void *list, uintptr_t size)');
  const lgetxattr = lib.func('intptr_t lgetxattr(const char *path, const char *name, _Out_ void *value, uintptr_t size)');
  const lsetxattr = lib.func('int lsetxattr(const char *path, const char *name, const void *value, uintptr_t size, int flags)');
  const mknod = lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');
  const utimensat = lib.func('int utimensat(int dirfd, const char *path, const void *times, int flags)');
  const check = (result: number | bigint): number => {
    const value = Number(result);
    return value < 0 ? -koffi.errno() : value;
  };
  loaded = {
    flock: (fd, operation) => check(flock(fd, operation)),
    llistxattr: (path, list, size) => check(llistxattr(path, list, size)),
    lgetxattr: (path, name, value, size) => check(lgetxattr(path, name, value, size)),
    lsetxattr: (path, name, value, size, flags) => check(lsetxattr(path, name, value, size, flags)),
    mknod: (path, mode, dev) => check(mknod(path, mode, dev)),
    lutimens: (path, atimeNs, mtimeNs) =>
      check(utimensat(AT_FDCWD, path, encodeTimespecs(atimeNs, mtimeNs), AT_SYMLINK_NOFOLLOW)),
  };
  return loaded;
}
