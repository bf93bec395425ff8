// Chooses how /dev/mapper is kept in step: udev cookies when udev runs and
// the library can synchronise with it, the library's own nodes otherwise.
// The checks follow libdm's dm_udev_get_sync_support: udev running,
// System V semaphores working, DM_DISABLE_UDEV not set.

import fs from 'node:fs';

import { DmError } from '../ioctl/errors.js';
import { sysv as loadSysv, type SysvSemaphores } from '../ioctl/sysv.js';
import type { Libc } from '../ioctl/libc.js';
import type { NodeSync } from '../dm/types.js';
import { semaphoreSupportProblem, UdevErrorCode } from './cookie.js';
import { defaultUdevLogger, type UdevLogger } from './logger.js';
import { DirectNodes } from './nodes.js';
import { UdevCookieSync } from './sync.js';

/** The socket systemd-udevd listens on; libudev's udev_queue_get_udev_is_active checks it too. */
export const UDEV_CONTROL_PATH = '/run/udev/control';

/**
 * `auto` uses cookies when udev runs and the library's own nodes otherwise.
 * `cookie` always uses cookies, so without udev each wait ends in its
 * timeout. `direct` never uses them.
 */
export type UdevMode = 'auto' | 'cookie' | 'direct';

export interface UdevSyncOptions {
  udev?: UdevMode;
  /** Bound of each wait for udev, in milliseconds (default 30 s). */
  udevWaitTimeoutMs?: number;
  /** Ends every wait for udev when it fires, such as at shutdown. */
  udevWaitSignal?: AbortSignal;
  /**
   * When udev runs but cannot be synchronised with, manage nodes directly
   * (with a warning) instead of failing, like Docker's
   * dm.override_udev_sync_check.
   */
  overrideUdevSyncCheck?: boolean;
  udevLogger?: UdevLogger;
  /** Folder that contains the nodes; default /dev/mapper. */
  nodeDir?: string;
  libc?: Libc;
  sysv?: SysvSemaphores;
  /** Environment to read DM_DISABLE_UDEV from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Socket whose presence means udev runs; default /run/udev/control. */
  udevControlPath?: string;
}

/** Results of the checks libdm runs before it uses cookies. */
export interface UdevEnvironment {
  udevRunning: boolean;
  /** Reason System V semaphores cannot be used, or undefined when they can. */
  semaphoreProblem: string | undefined;
  /** DM_DISABLE_UDEV is set (to anything, as libdm reads it). */
  disabledByEnv: boolean;
}

/** Runs the three checks libdm runs before it uses cookies. */
export function inspectUdev(options: UdevSyncOptions = {}): UdevEnvironment {
  const env = options.env ?? process.env;
  let sem: SysvSemaphores | undefined = options.sysv;
  let loadProblem: string | undefined;
  if (!sem) {
    try {
      sem = loadSysv();
    } catch (error) {
      loadProblem = `the semaphore calls could not be loaded (${(error as Error).message})`;
    }
  }
  return {
    udevRunning: fs.existsSync(options.udevControlPath ?? UDEV_CONTROL_PATH),
    semaphoreProblem: loadProblem ?? (sem ? semaphoreSupportProblem(sem) : undefined),
    disabledByEnv: env.DM_DISABLE_UDEV !== undefined,
  };
}

/**
 * Returns the NodeSync that `options.udev` and the environment call for.
 * Throws ERR_DM_UDEV_SYNC_UNSUPPORTED when cookies are needed (udev runs, or
 * `udev: 'cookie'`) but System V semaphores do not work, unless
 * `overrideUdevSyncCheck` is set.
 */
export function createNodeSync(options: UdevSyncOptions = {}): NodeSync {
  const mode = options.udev ?? 'auto';
  const logger = options.udevLogger ?? defaultUdevLogger;
  const direct = (): NodeSync => new DirectNodes({ dir: options.nodeDir, libc: options.libc });
  if (mode === 'direct') return direct();
  const found = inspectUdev(options);
  if (mode === 'auto') {
    if (!found.udevRunning) return direct();
    if (found.disabledByEnv) {
      logger.warn({
        code: 'DM_UDEV_BYPASSED',
        message: 'Udev is running and DM_DISABLE_UDEV is set, so udev is bypassed and the library manages the nodes in /dev/mapper itself',
      });
      return direct();
    }
  }
  if (found.semaphoreProblem !== undefined) {
    const why =
      `${mode === 'cookie' ? 'Udev cookies were requested' : `Udev is running (${options.udevControlPath ?? UDEV_CONTROL_PATH} exists)`}` +
      ` but System V semaphores are unavailable: ${found.semaphoreProblem}`;
    if (!options.overrideUdevSyncCheck) {
      throw new DmError(
        UdevErrorCode.SYNC_UNSUPPORTED,
        `${why}. Without them the library cannot wait for udev and would race with it over /dev/mapper nodes; ` +
          "pass { overrideUdevSyncCheck: true } or { udev: 'direct' } to let the library manage the nodes itself",
      );
    }
    logger.warn({ code: 'DM_UDEV_BYPASSED', message: `${why}, so the library manages the nodes in /dev/mapper itself (overrideUdevSyncCheck)` });
    return direct();
  }
  return new UdevCookieSync({
    dir: options.nodeDir,
    libc: options.libc,
    sysv: options.sysv,
    timeoutMs: options.udevWaitTimeoutMs,
    signal: options.udevWaitSignal,
    logger,
  });
}
