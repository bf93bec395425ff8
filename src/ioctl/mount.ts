// mount(2) and umount2(2) through the libc binding, so nothing shells out
// to mount(8).

import { systemError } from './errors.js';
import { libc as loadLibc, MNT_DETACH, MS_RDONLY, type Libc } from './libc.js';

export interface MountOptions {
  readOnly?: boolean;
  /** Filesystem-specific option string, such as `discard`. */
  data?: string;
  libc?: Libc;
}

/** Mounts block device `source` of type `fstype` on `target`. */
export function mount(source: string, target: string, fstype: string, options: MountOptions = {}): void {
  const libc = options.libc ?? loadLibc();
  const flags = options.readOnly ? MS_RDONLY : 0;
  const result = libc.mount(source, target, fstype, flags, options.data ?? null);
  if (result < 0) {
    throw systemError(-result, `Mounting ${source} (${fstype}) on ${target} failed`, { syscall: 'mount', device: source, path: target });
  }
}

/** Unmounts `target`; `lazy` detaches it now and cleans up when it is no longer busy (MNT_DETACH). */
export function umount(target: string, options: { lazy?: boolean; libc?: Libc } = {}): void {
  const libc = options.libc ?? loadLibc();
  const result = libc.umount2(target, options.lazy ? MNT_DETACH : 0);
  if (result < 0) {
    throw systemError(-result, `Unmounting ${target} failed`, { syscall: 'umount2', path: target });
  }
}
