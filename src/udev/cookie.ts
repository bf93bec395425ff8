// The udev cookie protocol of lvm2's libdevmapper (libdm-common.c), so that
// lvm2's udev rules and Debian's dmsetup interoperate with this library.
//
// A cookie is a System V semaphore set of one semaphore whose key is
// DM_COOKIE_MAGIC << 16 | base, with `base` a random non-zero 16-bit value.
// The creator sets it to 1 and adds 1 for each ioctl that will produce a
// uevent. The ioctl carries `udevFlags << 16 | base` in event_nr; the kernel
// passes that on in the uevent as DM_COOKIE, and 95-dm-notify.rules runs
// `dmsetup udevcomplete $DM_COOKIE`, which subtracts 1. The creator then
// subtracts its own 1, waits for zero and removes the set.

import { randomInt } from 'node:crypto';
import { constants as osConstants } from 'node:os';

import { DmError, DmErrorCode, errnoName, systemError } from '../ioctl/errors.js';
import {
  encodeSembufs,
  GETVAL,
  IPC_CREAT,
  IPC_EXCL,
  IPC_NOWAIT,
  IPC_RMID,
  SEM_INFO,
  SEM_STAT,
  SEMID_DS_BUFFER_SIZE,
  SEMINFO_SIZE,
  semidDsLayout,
  SETVAL,
  type SysvSemaphores,
} from '../ioctl/sysv.js';

const { EAGAIN, EEXIST, EIDRM, EINVAL, ENOENT } = osConstants.errno;

/** DM_COOKIE_MAGIC (libdm-common.h): the high 16 bits of every cookie's semaphore key. */
export const DM_COOKIE_MAGIC = 0x0d4d;
/** DM_UDEV_FLAGS_SHIFT (libdevmapper.h): udev flags sit in the high 16 bits of event_nr. */
export const DM_UDEV_FLAGS_SHIFT = 16;
/** DM_UDEV_FLAGS_MASK (libdevmapper.h). */
export const DM_UDEV_FLAGS_MASK = 0xffff0000;
/** Permission bits of a cookie semaphore, as libdm creates it. */
export const DM_COOKIE_MODE = 0o600;

/** The udev flags of libdevmapper.h, read by lvm2's rules through `dmsetup udevflags`. */
export const DmUdevFlag = {
  DM_UDEV_DISABLE_DM_RULES_FLAG: 0x0001,
  DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG: 0x0002,
  DM_UDEV_DISABLE_DISK_RULES_FLAG: 0x0004,
  DM_UDEV_DISABLE_OTHER_RULES_FLAG: 0x0008,
  DM_UDEV_LOW_PRIORITY_FLAG: 0x0010,
  DM_UDEV_DISABLE_LIBRARY_FALLBACK: 0x0020,
  DM_UDEV_PRIMARY_SOURCE_FLAG: 0x0040,
} as const;

/**
 * Error codes of the cookie layer. Failures of a semaphore call keep their
 * errno name (`ENOSPC`, `EAGAIN`, ...) as code instead.
 */
export const UdevErrorCode = {
  SYNC_UNSUPPORTED: DmErrorCode.UDEV_SYNC_UNSUPPORTED,
  INVALID_COOKIE: DmErrorCode.UDEV_INVALID_COOKIE,
  /** A wait for udev ended because its AbortSignal fired. */
  ABORTED: 'ABORT_ERR',
} as const;

/** The semaphore key of cookie `base`. */
export function cookieKey(base: number): number {
  return ((DM_COOKIE_MAGIC << DM_UDEV_FLAGS_SHIFT) | (base & 0xffff)) >>> 0;
}

/** The event_nr value that sends cookie `base` with `udevFlags`. */
export function cookieEventNr(base: number, udevFlags: number): number {
  return (((udevFlags & 0xffff) << DM_UDEV_FLAGS_SHIFT) | (base & 0xffff)) >>> 0;
}

/** Formats a cookie key as dmsetup prints it: `0x` and lower-case hex. */
export function formatCookie(key: number): string {
  return `0x${key.toString(16)}`;
}

/**
 * Parses a cookie as `dmsetup udevcomplete` takes it: decimal (udev passes
 * DM_COOKIE so), `0x` hex or `0` octal, non-zero, at most 0xffffffff.
 */
export function parseCookie(text: string): number {
  const trimmed = text.trim();
  let value = Number.NaN;
  if (/^0[xX][0-9a-fA-F]+$/.test(trimmed)) value = Number.parseInt(trimmed.slice(2), 16);
  else if (/^0[0-7]*$/.test(trimmed)) value = Number.parseInt(trimmed, 8);
  else if (/^[1-9][0-9]*$/.test(trimmed)) value = Number(trimmed);
  if (!Number.isSafeInteger(value) || value === 0 || value > 0xffffffff) {
    throw new DmError(
      UdevErrorCode.INVALID_COOKIE,
      `Invalid cookie value ${JSON.stringify(text)}: give the DM_COOKIE value or the key that dmctl udevcookies prints, such as 0xd4d1234`,
    );
  }
  return value;
}

/**
 * Returns the semaphore key of any cookie value: event_nr and DM_COOKIE
 * carry udev flags in the high 16 bits, which dmsetup replaces by the magic.
 * Returns undefined when the low 16 bits are zero: such a value carries
 * udev flags only and stands for no semaphore.
 */
export function keyOfCookie(value: number): number | undefined {
  const base = value & 0xffff;
  return base === 0 ? undefined : cookieKey(base);
}

/** True when a semaphore key has the DM_COOKIE_MAGIC prefix. */
export function isCookieKey(key: number): boolean {
  return key >>> DM_UDEV_FLAGS_SHIFT === DM_COOKIE_MAGIC;
}

/** Tells whether System V semaphores work, as libdm checks it: semctl(SEM_INFO). Returns the reason when not. */
export function semaphoreSupportProblem(sem: SysvSemaphores): string | undefined {
  let result: number;
  try {
    result = sem.semctlBuffer(0, 0, SEM_INFO, Buffer.alloc(SEMINFO_SIZE));
  } catch (error) {
    return `the semaphore calls could not be loaded (${(error as Error).message})`;
  }
  if (result < 0) return `semctl(SEM_INFO) failed with ${errnoName(-result)}`;
  return undefined;
}

/** One cookie semaphore, addressed by its key and semaphore id. */
export class UdevCookie {
  readonly key: number;
  readonly semid: number;
  readonly #sem: SysvSemaphores;
  #removed = false;

  constructor(sem: SysvSemaphores, key: number, semid: number) {
    this.#sem = sem;
    this.key = key;
    this.semid = semid;
  }

  /** The random low 16 bits. */
  get base(): number {
    return this.key & 0xffff;
  }

  /** True once remove() took the semaphore away. */
  get removed(): boolean {
    return this.#removed;
  }

  /** The event_nr that sends this cookie with `udevFlags`. */
  eventNr(udevFlags: number): number {
    return cookieEventNr(this.base, udevFlags);
  }

  /** Adds 1: one more uevent to wait for. */
  increment(): void {
    this.#semop(1, 0, 'incrementing');
  }

  /**
   * Subtracts 1 without waiting, as `dmsetup udevcomplete` does. Fails with
   * EAGAIN when the value is already 0.
   */
  decrement(): void {
    this.#semop(-1, IPC_NOWAIT, 'decrementing');
  }

  /** The semaphore's value, or undefined once the semaphore is gone. */
  value(): number | undefined {
    const result = this.#sem.semctlInt(this.semid, 0, GETVAL, 0);
    if (result >= 0) return result;
    if (isGone(-result)) return undefined;
    throw this.#error(-result, 'reading', 'semctl');
  }

  /** Removes the semaphore; later calls and a semaphore already gone are no-ops. Returns true when this call removed it. */
  remove(): boolean {
    if (this.#removed) return false;
    this.#removed = true;
    const result = this.#sem.semctlInt(this.semid, 0, IPC_RMID, 0);
    if (result >= 0) return true;
    if (isGone(-result)) return false;
    throw this.#error(-result, 'removing', 'semctl');
  }

  #semop(op: number, flags: number, action: string): void {
    const result = this.#sem.semop(this.semid, encodeSembufs([{ num: 0, op, flags }]), 1);
    if (result < 0) throw this.#error(-result, action, 'semop');
  }

  #error(errno: number, action: string, syscall: string): DmError {
    const detail = errno === EAGAIN && action === 'decrementing' ? ' because its value is already 0' : '';
    return systemError(errno, `${capitalize(action)} udev cookie ${formatCookie(this.key)} (semid ${this.semid}) failed${detail}`, { syscall });
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** EIDRM during a call and EINVAL after it both mean the semaphore set no longer exists. */
function isGone(errno: number): boolean {
  return errno === EIDRM || errno === EINVAL;
}

/** Number of random keys tried before creating a cookie gives up on EEXIST. */
const CREATE_ATTEMPTS = 64;

/**
 * Creates a cookie with a fresh random key (IPC_CREAT | IPC_EXCL, mode 0600)
 * and value 1, as libdm's _udev_notify_sem_create does. On any failure after
 * semget the semaphore is removed again.
 */
export function createCookie(sem: SysvSemaphores, randomBase: () => number = () => randomInt(1, 0x10000)): UdevCookie {
  for (let attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
    const key = cookieKey(randomBase());
    if ((key & 0xffff) === 0) continue;
    const semid = sem.semget(key, 1, DM_COOKIE_MODE | IPC_CREAT | IPC_EXCL);
    if (semid === -EEXIST) continue;
    if (semid < 0) {
      const hint = -semid === osConstants.errno.ENOSPC ? '; the limits are in /proc/sys/kernel/sem, and dmctl udevcookies lists cookies left behind' : '';
      throw systemError(-semid, `Creating a udev cookie semaphore failed${hint}`, { syscall: 'semget' });
    }
    const cookie = new UdevCookie(sem, key, semid);
    const set = sem.semctlInt(semid, 0, SETVAL, 1);
    if (set < 0) {
      cookie.remove();
      throw systemError(-set, `Setting udev cookie ${formatCookie(key)} (semid ${semid}) to 1 failed`, { syscall: 'semctl' });
    }
    return cookie;
  }
  throw systemError(EEXIST, `Creating a udev cookie semaphore failed: ${CREATE_ATTEMPTS} random keys were all taken`, { syscall: 'semget' });
}

/** Opens the existing cookie semaphore for any cookie value (see keyOfCookie). */
export function openCookie(sem: SysvSemaphores, value: number): UdevCookie {
  const key = keyOfCookie(value);
  if (key === undefined) {
    throw new DmError(UdevErrorCode.INVALID_COOKIE, `Cookie ${formatCookie(value)} carries udev flags only and names no semaphore`);
  }
  const semid = sem.semget(key, 1, 0);
  if (semid < 0) {
    const reason = -semid === ENOENT ? 'no semaphore has that key' : errnoName(-semid);
    throw systemError(-semid, `Opening udev cookie ${formatCookie(key)} (from ${value}) failed: ${reason}`, { syscall: 'semget' });
  }
  return new UdevCookie(sem, key, semid);
}

/**
 * `dmsetup udevcomplete`: subtracts 1 from the cookie that `value` names.
 * Returns false, doing nothing, for a value that carries udev flags only.
 */
export function completeCookie(sem: SysvSemaphores, value: number): boolean {
  if (keyOfCookie(value) === undefined) return false;
  openCookie(sem, value).decrement();
  return true;
}

/** A cookie semaphore as SEM_STAT reports it. Times are seconds since the epoch, 0 for never. */
export interface CookieStatus {
  key: number;
  semid: number;
  value: number;
  /** Time of the last semop. */
  otime: number;
  /** Time of the last change by semctl (creation, SETVAL). */
  ctime: number;
}

/**
 * Lists the semaphores whose key has the DM_COOKIE_MAGIC prefix, walking
 * the kernel's table with SEM_INFO and SEM_STAT as dmsetup udevcookies does.
 * Sets that vanish during the walk are skipped.
 */
export function listCookies(sem: SysvSemaphores): CookieStatus[] {
  const layout = semidDsLayout();
  if (!layout) {
    throw new DmError(UdevErrorCode.SYNC_UNSUPPORTED, `Listing udev cookies is not supported on ${process.arch}: the layout of struct semid_ds there is unknown to this library`);
  }
  const maxIndex = sem.semctlBuffer(0, 0, SEM_INFO, Buffer.alloc(SEMINFO_SIZE));
  if (maxIndex < 0) throw systemError(-maxIndex, 'Listing System V semaphores failed', { syscall: 'semctl' });
  const cookies: CookieStatus[] = [];
  const buf = Buffer.alloc(SEMID_DS_BUFFER_SIZE);
  for (let index = 0; index <= maxIndex; index++) {
    const semid = sem.semctlBuffer(index, 0, SEM_STAT, buf);
    if (semid < 0) continue;
    const key = buf.readInt32LE(layout.key) >>> 0;
    if (!isCookieKey(key)) continue;
    const value = sem.semctlInt(semid, 0, GETVAL, 0);
    if (value < 0) continue;
    cookies.push({
      key,
      semid,
      value,
      otime: Number(buf.readBigInt64LE(layout.otime)),
      ctime: Number(buf.readBigInt64LE(layout.ctime)),
    });
  }
  return cookies;
}

/** What removeCookies did. */
export interface RemovedCookies {
  destroyed: number;
  skipped: number;
  /** Cookies whose IPC_RMID failed, with the errno name. */
  failed: { key: number; semid: number; code: string }[];
}

/**
 * `dmsetup udevcomplete_all [age]`: removes every cookie semaphore, except,
 * when `ageMinutes` is above 0, those created or used less than `ageMinutes`
 * minutes before `nowSeconds`. Waiters on a removed cookie wake up at once.
 */
export function removeCookies(sem: SysvSemaphores, ageMinutes = 0, nowSeconds = Math.floor(Date.now() / 1000)): RemovedCookies {
  const result: RemovedCookies = { destroyed: 0, skipped: 0, failed: [] };
  const ageSeconds = ageMinutes * 60;
  for (const cookie of listCookies(sem)) {
    if (cookie.ctime + ageSeconds > nowSeconds || cookie.otime + ageSeconds > nowSeconds) {
      result.skipped++;
      continue;
    }
    const removed = sem.semctlInt(cookie.semid, 0, IPC_RMID, 0);
    if (removed < 0) {
      result.failed.push({ key: cookie.key, semid: cookie.semid, code: errnoName(-removed) });
      continue;
    }
    result.destroyed++;
  }
  return result;
}
