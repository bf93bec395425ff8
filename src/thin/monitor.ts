// The low-water-mark monitor that thin-provisioning.rst expects userspace to
// run: the pool raises a dm event when its free data blocks drop to or below
// the low water mark on allocation; the monitor catches the event, reads the
// status and, when free space is at or below the mark, grows the data file
// by a step up to a ceiling. The wait is DM_DEV_ARM_POLL and poll(2) through
// DeviceMapper.waitEvent(), so the event loop keeps running meanwhile.

import { EventEmitter } from 'node:events';
import { debuglog } from 'node:util';

import { DmError, DmErrorCode } from '../ioctl/errors.js';
import { bytesToSectors, type Sectors, sectorsToBytes, sectors } from '../targets/table.js';
import type { ThinPool } from './pool.js';

const debug = debuglog('dm');

export interface MonitorOptions {
  /** Bytes added to the data file per extension; a multiple of the pool's block size in bytes. */
  stepBytes: bigint | number;
  /** The data file never grows beyond this many bytes. */
  maxBytes: bigint | number;
  /** Stops the monitor. */
  signal?: AbortSignal;
}

/** One extension of the data device. */
export interface ExtendEvent {
  pool: string;
  fromSectors: Sectors;
  toSectors: Sectors;
  /** Free data blocks before the extension. */
  freeBlocks: bigint;
}

/** The data device reached the ceiling while free space is at or below the low water mark. */
export interface ExhaustedEvent {
  pool: string;
  sizeSectors: Sectors;
  freeBlocks: bigint;
  lowWaterMark: bigint;
}

export interface LowWaterMarkMonitorEvents {
  extend: [ExtendEvent];
  exhausted: [ExhaustedEvent];
  error: [unknown];
  stop: [];
}

/**
 * Watches one file-backed pool. Emits `extend` after each extension,
 * `exhausted` once when the ceiling is reached (the pool then runs out of
 * space as its feature arguments say: error_if_no_space fails I/O, otherwise
 * I/O queues), `error` when a check fails (the monitor keeps waiting), and
 * `stop` when it ends.
 */
export class LowWaterMarkMonitor extends EventEmitter<LowWaterMarkMonitorEvents> {
  readonly #pool: ThinPool;
  readonly #stepSectors: Sectors;
  readonly #maxSectors: Sectors;
  readonly #controller = new AbortController();
  #running: Promise<void> | undefined;
  #exhaustedReported = false;
  /** Extensions made so far. */
  extensions = 0;

  constructor(pool: ThinPool, options: MonitorOptions) {
    super();
    this.#pool = pool;
    this.#stepSectors = bytesToSectors(options.stepBytes, 'monitor stepBytes');
    this.#maxSectors = bytesToSectors(options.maxBytes, 'monitor maxBytes');
    if (this.#stepSectors % pool.dataBlockSize !== 0n) {
      throw new DmError(
        DmErrorCode.INVALID_ARGUMENT,
        `Invalid monitor stepBytes ${options.stepBytes}: use a multiple of the pool's data block size, ${sectorsToBytes(pool.dataBlockSize)} bytes`,
        { device: pool.name },
      );
    }
    if (pool.dataLoop === undefined) {
      throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Pool "${pool.name}" is not backed by a data file this library attached, so the monitor cannot grow it`, {
        device: pool.name,
      });
    }
    options.signal?.addEventListener('abort', () => this.#controller.abort(options.signal?.reason), { once: true });
  }

  /** Starts watching; checks the pool once at once, then on every dm event. */
  start(): this {
    this.#running ??= this.#run().finally(() => this.emit('stop'));
    return this;
  }

  /** Stops watching and resolves when the wait has ended. */
  async stop(): Promise<void> {
    this.#controller.abort();
    await this.#running;
  }

  /**
   * Reads the pool status and grows the data device when free data blocks
   * are at or below the low water mark. Returns true when it grew it.
   */
  async check(): Promise<boolean> {
    const pool = this.#pool;
    const status = pool.status({ noflush: true });
    if (status.state !== 'ok') {
      debug('monitor: pool %s reports %s, not growing it', pool.name, status.state);
      return false;
    }
    const freeBlocks = status.totalDataBlocks - status.usedDataBlocks;
    if (freeBlocks > pool.lowWaterMark) return false;
    const current = sectors(pool.dataLoop?.sizeSectors() ?? 0n);
    const target = sectors(current + this.#stepSectors > this.#maxSectors ? this.#maxSectors : current + this.#stepSectors);
    if (target <= current) {
      if (!this.#exhaustedReported) {
        this.#exhaustedReported = true;
        debug('monitor: pool %s has %s free blocks and its data device is at the ceiling of %s sectors', pool.name, freeBlocks, this.#maxSectors);
        this.emit('exhausted', { pool: pool.name, sizeSectors: current, freeBlocks, lowWaterMark: pool.lowWaterMark });
      }
      return false;
    }
    await pool.growData(sectorsToBytes(target));
    this.extensions++;
    debug('monitor: pool %s had %s free blocks, grew data from %s to %s sectors', pool.name, freeBlocks, current, target);
    this.emit('extend', { pool: pool.name, fromSectors: current, toSectors: target, freeBlocks });
    return true;
  }

  async #run(): Promise<void> {
    const { dm, name } = this.#pool;
    const signal = this.#controller.signal;
    while (!signal.aborted) {
      // Read the event number before the check, so an event raised during the
      // check ends the next wait at once instead of being missed.
      const info = dm.info(name);
      if (!info.exists) {
        this.#report(new DmError('ENXIO', `Pool "${name}" disappeared; the monitor stops`, { device: name }));
        return;
      }
      try {
        // Grow until free space is above the mark or the ceiling is reached.
        while (await this.check()) {
          if (signal.aborted) return;
        }
      } catch (error) {
        this.#report(error);
      }
      try {
        await dm.waitEvent(name, info.eventNr, { signal });
      } catch (error) {
        if (signal.aborted) return;
        this.#report(error);
        return;
      }
    }
  }

  /** Logs `error` and emits it to `error` listeners; without a listener it is only logged, so it never crashes the process. */
  #report(error: unknown): void {
    debug('monitor: pool %s: %s', this.#pool.name, error instanceof Error ? error.message : String(error));
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}
