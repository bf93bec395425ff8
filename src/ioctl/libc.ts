// The koffi binding of the few libc calls Node has no API for. Each wrapper
// returns the call's result when it is not negative and `-errno` when it
// failed, so callers build their own errors with the context they have.

import { createRequire } from 'node:module';

/** The system calls the library makes outside Node's own APIs. */
export interface Libc {
  /** ioctl(fd, request, buf) with an in/out buffer. */
  ioctlBuffer(fd: number, request: number, buf: Buffer): number;
  /** ioctl(fd, request, arg) with an integer argument. */
  ioctlInt(fd: number, request: number, arg: number): number;
  /** mknod(path, mode, dev). */
  mknod(path: string, mode: number, dev: bigint): number;
  /** mount(source, target, fstype, flags, data). */
  mount(source: string, target: string, fstype: string, flags: number, data: string | null): number;
  /** umount2(target, flags). */
  umount2(target: string, flags: number): number;
  /** ioctl(fd, request, buf) on a worker thread, for commands that block (DM_DEV_WAIT). */
  ioctlBufferAsync(fd: number, request: number, buf: Buffer): Promise<number>;
  /** poll(fds, count, timeoutMs) on a worker thread; `fds` contains `struct pollfd` records. */
  pollAsync(fds: Buffer, count: number, timeoutMs: number): Promise<number>;
}

/** `struct pollfd`: int fd, short events, short revents (8 bytes). */
export const POLLFD_SIZE = 8;
export const PollfdOffset = { fd: 0, events: 4, revents: 6 } as const;
/** poll.h: data to read. */
export const POLLIN = 0x1;

// sys/stat.h file type bits.
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

// sys/mount.h flags.
export const MS_RDONLY = 1;
export const MNT_DETACH = 2;

type AsyncCallback = (error: unknown, result: number) => void;
type KoffiFunction = ((...args: unknown[]) => number) & { async(...args: unknown[]): void };

interface KoffiModule {
  load(path: string): { func(signature: string): KoffiFunction };
  errno(): number;
}

let loaded: Libc | undefined;

/** Loads libc through koffi once and returns the binding. */
export function libc(): Libc {
  if (loaded) return loaded;
  // koffi is a CommonJS package with a native binary; require() keeps its
  // loading synchronous so every entry point stays sync where the kernel is.
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as KoffiModule;
  const lib = koffi.load('libc.so.6');
  const ioctlBuffer = lib.func('int ioctl(int fd, unsigned long request, _Inout_ void *buf)');
  const ioctlInt = lib.func('int ioctl(int fd, unsigned long request, unsigned long arg)');
  const mknod = lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');
  const mount = lib.func(
    'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
  );
  const umount2 = lib.func('int umount2(const char *target, int flags)');
  const poll = lib.func('int poll(_Inout_ void *fds, unsigned long count, int timeout)');
  const check = (result: number): number => (result < 0 ? -koffi.errno() : result);
  // koffi runs `.async` calls on its worker threads and keeps each call's
  // errno, so a blocking call never stalls the event loop.
  const callAsync = (fn: KoffiFunction, ...args: unknown[]): Promise<number> =>
    new Promise((resolve, reject) => {
      const done: AsyncCallback = (error, result) => (error ? reject(error) : resolve(check(result)));
      fn.async(...args, done);
    });
  loaded = {
    ioctlBuffer: (fd, request, buf) => check(ioctlBuffer(fd, request, buf)),
    ioctlInt: (fd, request, arg) => check(ioctlInt(fd, request, arg)),
    mknod: (path, mode, dev) => check(mknod(path, mode, dev)),
    mount: (source, target, fstype, flags, data) => check(mount(source, target, fstype, flags, data)),
    umount2: (target, flags) => check(umount2(target, flags)),
    ioctlBufferAsync: (fd, request, buf) => callAsync(ioctlBuffer, fd, request, buf),
    pollAsync: (fds, count, timeoutMs) => callAsync(poll, fds, count, timeoutMs),
  };
  return loaded;
}
