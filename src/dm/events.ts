// Waiting for dm events without blocking the event loop. Each round arms the
// poll on a control descriptor of our own (DM_DEV_ARM_POLL) and re-reads the
// device's event number. Then poll(2) runs on a worker thread in short slices,
// so an AbortSignal or a timeout ends the wait promptly.

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import { debuglog } from 'node:util';

import { DmError, DmErrorCode, systemError } from '../ioctl/errors.js';
import { POLLFD_SIZE, PollfdOffset, POLLIN, type Libc } from '../ioctl/libc.js';
import type { DeviceInfo } from './types.js';

const debug = debuglog('dm');
const { EINTR } = osConstants.errno;

/** Maximum length of one poll(2), so an abort or a timeout takes effect within this time. */
export const POLL_SLICE_MS = 250;

export interface WaitEventOptions {
  signal?: AbortSignal;
  /** Give up after this many milliseconds (default: wait until `signal` aborts). */
  timeoutMs?: number;
}

export interface EventSource {
  controlPath: string;
  libc: Libc;
  /** Issues DM_DEV_ARM_POLL on `fd`. */
  armPoll(fd: number): void;
  /** Reads the device's current info (throws when it is gone). */
  eventNr(): DeviceInfo;
}

/** Resolves with the device's info once its event number differs from `eventNr`. */
export async function waitForEvent(source: EventSource, eventNr: number, options: WaitEventOptions = {}): Promise<DeviceInfo> {
  const { signal, timeoutMs } = options;
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
  const fd = fs.openSync(source.controlPath, fs.constants.O_RDWR);
  const pollfd = Buffer.alloc(POLLFD_SIZE);
  try {
    for (;;) {
      signal?.throwIfAborted();
      // Arm before reading the event number so an event in between still wakes the poll.
      source.armPoll(fd);
      const info = source.eventNr();
      if (info.eventNr !== eventNr) return info;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new DmError(DmErrorCode.TIMEOUT, `No dm event on "${info.name}" after event ${eventNr} within ${timeoutMs} ms`, {
          command: 'DM_DEV_ARM_POLL',
          device: info.name,
        });
      }
      pollfd.writeInt32LE(fd, PollfdOffset.fd);
      pollfd.writeInt16LE(POLLIN, PollfdOffset.events);
      pollfd.writeInt16LE(0, PollfdOffset.revents);
      const result = await source.libc.pollAsync(pollfd, 1, Math.min(POLL_SLICE_MS, remaining));
      if (result < 0 && -result !== EINTR) {
        throw systemError(-result, `poll on ${source.controlPath} failed`, { syscall: 'poll', device: info.name });
      }
      if (result > 0) debug('dm event seen while waiting on %s (event %d)', info.name, eventNr);
    }
  } finally {
    fs.closeSync(fd);
  }
}
