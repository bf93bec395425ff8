// Waiting for udev to bring a cookie semaphore to zero, without blocking
// Node's event loop and with an end: a deadline and an AbortSignal.
//
// The wait polls the semaphore's value (semctl GETVAL) on timers instead of
// blocking in semop on a worker thread. koffi runs `.async` calls on a few
// worker threads (as many as the machine has cores) and queues the rest. A
// semop that waits for udev would occupy one of them for the whole wait,
// and only removing the semaphore could cut it short. A poll costs one
// system call per tick and notices udev's completion at most one interval
// late.

import { setTimeout as sleep } from 'node:timers/promises';

import type { UdevCookie } from './cookie.js';

/** First poll interval; udev usually completes a cookie within a few milliseconds. */
export const FIRST_POLL_INTERVAL_MS = 1;
/** The interval doubles up to this bound. */
export const MAX_POLL_INTERVAL_MS = 25;

/**
 * End of a wait: `zero` when the value reached 0, `removed` when someone
 * else removed the semaphore (`dmsetup udevcomplete_all`, which libdm also
 * counts as done), `timeout` at the deadline, `aborted` when the signal fired.
 */
export type WaitResult = 'zero' | 'removed' | 'timeout' | 'aborted';

export interface WaitForZeroOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Waits until `cookie` reads 0 or is gone, the timeout passes, or the signal fires; never throws for those. */
export async function waitForZero(cookie: UdevCookie, options: WaitForZeroOptions): Promise<WaitResult> {
  const deadline = performance.now() + options.timeoutMs;
  let interval = FIRST_POLL_INTERVAL_MS;
  for (;;) {
    const value = cookie.value();
    if (value === undefined) return 'removed';
    if (value === 0) return 'zero';
    if (options.signal?.aborted) return 'aborted';
    const left = deadline - performance.now();
    if (left <= 0) return 'timeout';
    try {
      await sleep(Math.min(interval, left), undefined, { signal: options.signal });
    } catch {
      // The signal fired during the sleep; the next turn reports it.
    }
    interval = Math.min(interval * 2, MAX_POLL_INTERVAL_MS);
  }
}
