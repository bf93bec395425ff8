// The reports of the udev layer when it had to do udev's part itself.

import type { NodeChange } from './nodes.js';

/**
 * One report. `code` names what happened: `DM_UDEV_WAIT_TIMEOUT` (udev did
 * not complete a cookie in time), `DM_UDEV_NO_UEVENT` (the kernel sent no
 * uevent), `DM_UDEV_NODE_FIXED` (udev completed the cookie but the node was
 * wrong), `DM_UDEV_BYPASSED` (udev runs but the library manages nodes itself).
 */
export interface UdevWarning {
  code: string;
  message: string;
  /** The cookie's semaphore key. */
  cookie?: number;
  semid?: number;
  device?: string;
  /** Changes the library made under /dev/mapper. */
  changes?: NodeChange[];
}

/** Receives the udev layer's warnings. */
export interface UdevLogger {
  warn(warning: UdevWarning): void;
}

/** Emits each warning as a Node process warning of type `DmUdevWarning`, with the warning's code. */
export const defaultUdevLogger: UdevLogger = {
  warn(warning) {
    process.emitWarning(warning.message, { type: 'DmUdevWarning', code: warning.code });
  },
};
