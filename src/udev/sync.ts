// Node synchronisation through udev cookies: the library sends a cookie with
// each command that produces a uevent, waits until lvm2's udev rules have
// run `dmsetup udevcomplete` for it, and falls back to making the node itself
// when udev does not complete the cookie in time or the kernel sent no uevent.

import { debuglog } from 'node:util';

import type { DevNumber, DmIoctlHeader } from '../ioctl/codec.js';
import { DmFlag } from '../ioctl/constants.js';
import { DmError, DmErrorCode } from '../ioctl/errors.js';
import { sysv as loadSysv, type SysvSemaphores } from '../ioctl/sysv.js';
import type { Libc } from '../ioctl/libc.js';
import type { NodeOperation, NodeSync, NodeSyncOutcome, NodeSyncTask } from '../dm/types.js';
import { createCookie, DmUdevFlag, formatCookie, UdevErrorCode, type UdevCookie } from './cookie.js';
import { defaultUdevLogger, type UdevLogger } from './logger.js';
import { DirectNodes, type NodeChange } from './nodes.js';
import { waitForZero, type WaitResult } from './wait.js';

const debug = debuglog('dm');

/**
 * Default bound of one wait for udev. libdm, Docker and devicemapper-rs wait
 * without any bound, and a udev worker that is killed (systemd-udevd kills
 * workers after its event_timeout, 180 s by default) or a missing
 * 95-dm-notify.rules then hangs the caller forever. 30 s is far above the
 * milliseconds udev normally takes and well below that 180 s.
 */
export const DEFAULT_UDEV_WAIT_TIMEOUT_MS = 30_000;

/**
 * Udev flags sent with a cookie, as Debian's dmsetup sends them (0x60): the
 * event is marked as coming from the library, so lvm2's rules treat it as a
 * real activation, and udev rather than the library manages /dev/mapper.
 */
export const COOKIE_UDEV_FLAGS = DmUdevFlag.DM_UDEV_PRIMARY_SOURCE_FLAG | DmUdevFlag.DM_UDEV_DISABLE_LIBRARY_FALLBACK;

const COMMAND_OF_KIND: Readonly<Record<NodeOperation['kind'], string>> = {
  resume: 'DM_DEV_SUSPEND (resume)',
  remove: 'DM_DEV_REMOVE',
  rename: 'DM_DEV_RENAME',
};

export interface UdevCookieSyncOptions {
  /** Folder that contains the nodes; default /dev/mapper. */
  dir?: string;
  libc?: Libc;
  /** The semaphore calls; tests pass a wrapper that injects failures. */
  sysv?: SysvSemaphores;
  /** Bound of each wait for udev, in milliseconds (default 30 s). */
  timeoutMs?: number;
  /** Ends every wait of this instance when it fires, such as at shutdown. */
  signal?: AbortSignal;
  /** Receives a warning each time the library had to do udev's part; default process.emitWarning. */
  logger?: UdevLogger;
}

/** Per-operation wait settings, on top of the instance's. */
export interface UdevWaitOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Cookies that are live in this process, removed at exit so none outlives it. */
const liveCookies = new Set<UdevCookie>();
let exitHookInstalled = false;

function track(cookie: UdevCookie): void {
  liveCookies.add(cookie);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const live of liveCookies) {
      try {
        live.remove();
      } catch {
        // The process is ending; nothing is left to report to.
      }
    }
  });
}

function release(cookie: UdevCookie): void {
  liveCookies.delete(cookie);
  cookie.remove();
}

/** Keeps /dev/mapper in step by waiting for udev through libdm-compatible cookies. */
export class UdevCookieSync implements NodeSync {
  readonly nodes: DirectNodes;
  readonly timeoutMs: number;
  readonly #sysv: SysvSemaphores | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #logger: UdevLogger;

  constructor(options: UdevCookieSyncOptions = {}) {
    this.nodes = new DirectNodes({ dir: options.dir, libc: options.libc });
    this.timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_UDEV_WAIT_TIMEOUT_MS);
    this.#sysv = options.sysv;
    this.#signal = options.signal;
    this.#logger = options.logger ?? defaultUdevLogger;
  }

  /**
   * Creates a cookie for one command and counts its uevent. Throws, with
   * nothing left behind, when no semaphore can be had.
   */
  begin(kind: NodeOperation['kind'], options: UdevWaitOptions = {}): NodeSyncTask {
    const cookie = createCookie(this.#sysv ?? loadSysv());
    track(cookie);
    try {
      cookie.increment();
    } catch (error) {
      release(cookie);
      throw error;
    }
    const eventNr = cookie.eventNr(COOKIE_UDEV_FLAGS);
    debug('udev cookie %s (semid %d) for %s, event_nr 0x%s', formatCookie(cookie.key), cookie.semid, kind, eventNr.toString(16));
    return {
      eventNr,
      finish: async (operation, reply, dev) => {
        try {
          return await this.#finish(cookie, operation, reply, dev, options);
        } finally {
          release(cookie);
        }
      },
      abort: () => {
        debug('udev cookie %s released: the %s ioctl failed', formatCookie(cookie.key), kind);
        release(cookie);
      },
    };
  }

  /** Removes the node of a device that DM_REMOVE_ALL took away, if udev has not yet. */
  nodeRemoved(name: string): void {
    this.nodes.removeNode(name);
  }

  async #finish(
    cookie: UdevCookie,
    operation: NodeOperation,
    reply: DmIoctlHeader,
    dev: DevNumber,
    options: UdevWaitOptions,
  ): Promise<NodeSyncOutcome> {
    const device = operationName(operation);
    if ((reply.flags & DmFlag.DM_UEVENT_GENERATED_FLAG) === 0) {
      release(cookie);
      if (operation.kind === 'remove' && (reply.flags & DmFlag.DM_DEFERRED_REMOVE) !== 0) {
        // The device stays until its last opener closes it; udev removes the
        // node on the uevent of that final removal.
        debug('remove of %s deferred: no uevent yet, node kept', device);
        return 'no-uevent';
      }
      const changes = this.nodes.apply(operation, dev);
      this.#warn('DM_UDEV_NO_UEVENT', cookie, operation, changes, 'the kernel generated no uevent for it');
      return 'no-uevent';
    }
    const result = await this.#wait(cookie, options);
    release(cookie);
    const changes = this.nodes.apply(operation, dev);
    switch (result) {
      case 'zero':
      case 'removed':
        if (changes.length > 0) this.#warn('DM_UDEV_NODE_FIXED', cookie, operation, changes, 'udev completed it but left /dev/mapper out of step');
        else debug('udev completed cookie %s for %s', formatCookie(cookie.key), device);
        return 'udev';
      case 'timeout':
        this.#warn('DM_UDEV_WAIT_TIMEOUT', cookie, operation, changes, `udev did not complete it within ${options.timeoutMs ?? this.timeoutMs} ms`);
        return 'timeout';
      case 'aborted':
        throw new DmError(
          UdevErrorCode.ABORTED,
          `Waiting for udev to complete cookie ${formatCookie(cookie.key)} for "${device}" was aborted. The library removed the cookie and brought /dev/mapper in step itself`,
          { command: COMMAND_OF_KIND[operation.kind], device, cause: abortReason(this.#signal, options.signal) },
        );
    }
  }

  /** Drops the library's own count of 1, then waits for udev's. */
  async #wait(cookie: UdevCookie, options: UdevWaitOptions): Promise<WaitResult> {
    try {
      cookie.decrement();
    } catch (error) {
      // EAGAIN: the value is already 0, because an extra udevcomplete ran.
      // EIDRM, EINVAL: someone removed the semaphore. Both count as done.
      if (error instanceof DmError && ['EAGAIN', 'EIDRM', 'EINVAL'].includes(error.code)) return 'zero';
      throw error;
    }
    const signal = combineSignals(this.#signal, options.signal);
    return waitForZero(cookie, { timeoutMs: checkTimeout(options.timeoutMs ?? this.timeoutMs), signal });
  }

  #warn(code: string, cookie: UdevCookie, operation: NodeOperation, changes: NodeChange[], reason: string): void {
    const device = operationName(operation);
    const fixes = changes.length > 0 ? changes.map((change) => `${change.action} ${change.path}`).join(', ') : `${this.nodes.nodePath(device)} was already right`;
    this.#logger.warn({
      code,
      message: `Udev cookie ${formatCookie(cookie.key)} (semid ${cookie.semid}) for ${describeOperation(operation)}: ${reason}, so the library removed the cookie and checked the node itself: ${fixes}`,
      cookie: cookie.key,
      semid: cookie.semid,
      device,
      changes,
    });
  }
}

function describeOperation(operation: NodeOperation): string {
  const command = COMMAND_OF_KIND[operation.kind];
  if (operation.kind === 'rename' && operation.newName !== operation.name) return `${command} of "${operation.name}" to "${operation.newName}"`;
  return `${command} of "${operation.name}"`;
}

function operationName(operation: NodeOperation): string {
  return operation.kind === 'rename' ? operation.newName : operation.name;
}

function checkTimeout(timeoutMs: number): number {
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid udev wait timeout ${timeoutMs}: give a finite number of milliseconds, 0 or more`);
  }
  return timeoutMs;
}

function combineSignals(...signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const present = signals.filter((signal): signal is AbortSignal => signal !== undefined);
  if (present.length <= 1) return present[0];
  return AbortSignal.any(present);
}

function abortReason(...signals: (AbortSignal | undefined)[]): unknown {
  return signals.find((signal) => signal?.aborted)?.reason;
}
