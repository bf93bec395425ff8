// Test doubles for the udev layer. The semaphores are real System V ones on
// the test machine, seen through a wrapper. It records what the library
// created and removed, injects failures, and hides every set it did not
// create, so tests never see or touch another program's cookies. A kernel
// wrapper adds what the fake kernel leaves out: DM_UEVENT_GENERATED_FLAG,
// and a udev that completes cookies after a delay.

import { constants as osConstants } from 'node:os';

import type { Libc } from '../../src/ioctl/libc.js';
import { GETVAL, IPC_RMID, SEM_INFO, SEM_STAT, SETVAL, sysv, type SysvSemaphores } from '../../src/ioctl/sysv.js';
import { completeCookie } from '../../src/udev/cookie.js';
import { Flag, type FakeKernel } from './fake-kernel.js';

const { EINVAL } = osConstants.errno;

/** The semctl commands a test can make fail, by command number. */
const SEMCTL_CALLS: Partial<Record<number, SysvCall>> = { [SETVAL]: 'SETVAL', [GETVAL]: 'GETVAL', [IPC_RMID]: 'IPC_RMID' };

/** Semaphore calls that a test can make fail. */
export type SysvCall = 'semget' | 'semop' | 'SETVAL' | 'GETVAL' | 'IPC_RMID' | 'SEM_INFO';

/** The real semaphore calls, recorded, with failures on demand and other programs' sets hidden. */
export class TrackingSysv implements SysvSemaphores {
  readonly created: number[] = [];
  readonly removed: number[] = [];
  semgetCalls = 0;
  /** errno to fail each call with, until deleted. */
  readonly failures = new Map<SysvCall, number>();
  readonly #real = sysv();

  semget(key: number, nsems: number, flags: number): number {
    this.semgetCalls++;
    const failure = this.failures.get('semget');
    if (failure !== undefined) return -failure;
    const semid = this.#real.semget(key, nsems, flags);
    if (semid >= 0 && (flags & 0o1000) !== 0) this.created.push(semid);
    return semid;
  }

  semctlInt(semid: number, semnum: number, cmd: number, arg: number): number {
    const call = SEMCTL_CALLS[cmd];
    const failure = call === undefined ? undefined : this.failures.get(call);
    if (failure !== undefined) return -failure;
    const result = this.#real.semctlInt(semid, semnum, cmd, arg);
    if (cmd === IPC_RMID && result >= 0) this.removed.push(semid);
    return result;
  }

  semctlBuffer(semid: number, semnum: number, cmd: number, buf: Buffer): number {
    if (cmd === SEM_INFO && this.failures.has('SEM_INFO')) return -(this.failures.get('SEM_INFO') as number);
    const result = this.#real.semctlBuffer(semid, semnum, cmd, buf);
    if (cmd === SEM_STAT && result >= 0 && !this.created.includes(result)) return -EINVAL;
    return result;
  }

  semop(semid: number, sops: Buffer, count: number): number {
    const failure = this.failures.get('semop');
    if (failure !== undefined) return -failure;
    return this.#real.semop(semid, sops, count);
  }

  /** Sets this wrapper created that still exist. */
  live(): number[] {
    return this.created.filter((semid) => this.#real.semctlInt(semid, 0, GETVAL, 0) >= 0);
  }

  /** Removes every set this wrapper created, for afterEach. */
  cleanUp(): void {
    for (const semid of this.live()) this.#real.semctlInt(semid, 0, IPC_RMID, 0);
  }
}

const DM_DEV_REMOVE_NR = 4;
const DM_DEV_RENAME_NR = 5;
const DM_DEV_SUSPEND_NR = 6;
const NAME_OFFSET = 48;
const FLAGS_OFFSET = 28;
const EVENT_NR_OFFSET = 32;

/** What a fake udev does with each uevent the kernel wrapper reports. */
export interface FakeUdev {
  onUevent(eventNr: number): void;
}

/** A udev that completes each cookie after `delayMs`, as 95-dm-notify.rules does; `enabled = false` makes it ignore them. */
export class CompletingUdev implements FakeUdev {
  enabled = true;
  readonly seen: number[] = [];
  readonly #sem: SysvSemaphores;
  readonly #delayMs: number;

  constructor(sem: SysvSemaphores, delayMs = 20) {
    this.#sem = sem;
    this.#delayMs = delayMs;
  }

  onUevent(eventNr: number): void {
    this.seen.push(eventNr);
    if (!this.enabled) return;
    setTimeout(() => {
      try {
        completeCookie(this.#sem, eventNr);
      } catch {
        // The waiter gave up and removed the cookie, as happens with a late udev.
      }
    }, this.#delayMs);
  }
}

/**
 * Wraps the fake kernel so that DM_DEV_REMOVE, DM_DEV_RENAME and resumes
 * report DM_UEVENT_GENERATED_FLAG when the real kernel would (dm-ioctl.c):
 * a remove that happened, every rename, and a resume of a suspended device.
 */
export function withUevents(kernel: FakeKernel, udev: FakeUdev): Libc {
  return new Proxy(kernel, {
    get(target, property, receiver) {
      if (property !== 'ioctlBuffer') {
        const value = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return (fd: number, request: number, buf: Buffer): number => {
        const nr = request & 0xff;
        const name = buf.toString('utf8', NAME_OFFSET, buf.indexOf(0, NAME_OFFSET));
        const before = kernel.devices.get(name);
        const resumingSuspended = before !== undefined && (before.suspended || before.inactive !== undefined);
        // The reply's event_nr is the device's event counter, so the cookie is read before the call.
        const eventNr = buf.readUInt32LE(EVENT_NR_OFFSET);
        const result = kernel.ioctlBuffer(fd, request, buf);
        if (result !== 0 || ((request >>> 8) & 0xff) !== 0xfd) return result;
        const flags = buf.readUInt32LE(FLAGS_OFFSET);
        const generated =
          (nr === DM_DEV_REMOVE_NR && (flags & Flag.DEFERRED_REMOVE) === 0) ||
          nr === DM_DEV_RENAME_NR ||
          (nr === DM_DEV_SUSPEND_NR && (flags & Flag.SUSPEND) === 0 && resumingSuspended);
        if (generated) {
          buf.writeUInt32LE((flags | Flag.UEVENT_GENERATED) >>> 0, FLAGS_OFFSET);
          udev.onUevent(eventNr);
        }
        return result;
      };
    },
  }) as unknown as Libc;
}
