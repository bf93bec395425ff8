// Thin pools over two sparse files on loop devices, the classic Docker
// layout: create the pool, thin volumes and snapshots by pool messages, and
// tear everything down in order (thin devices, pool, loop devices).

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import { debuglog } from 'node:util';

import type { DeviceMapper } from '../dm/client.js';
import type { DeviceInfo } from '../dm/types.js';
import { DmError, DmErrorCode } from '../ioctl/errors.js';
import { attachLoop, fileSizeSectors, type LoopDevice } from '../loop/loop.js';
import { bytesToSectors } from '../targets/table.js';
import {
  checkDataBlockSize,
  parseThinPoolStatus,
  THIN_METADATA_MAX_SECTORS,
  thinPoolTarget,
  type ThinPoolFeature,
  type ThinPoolStatus,
} from '../targets/thin-pool.js';
import { parseThinStatus, THIN_MAX_DEV_ID, thinTarget, type ThinStatus } from '../targets/thin.js';

const debug = debuglog('dm');
const { EEXIST, ENODATA } = osConstants.errno;

/** Docker's defaults: 64 KiB data blocks and a low water mark of 32768 blocks. */
export const DEFAULT_DATA_BLOCK_SIZE = 128n;
export const DEFAULT_LOW_WATER_MARK = 32768n;

export interface CreatePoolOptions {
  /** Name of the pool's dm device. */
  name: string;
  dataFile: string;
  metadataFile: string;
  /** Size in bytes of the data file, used when the file is created. */
  dataSize: bigint | number;
  /** Size in bytes of the metadata file, used when the file is created. */
  metadataSize: bigint | number;
  /** Data block size in sectors (default 128 = 64 KiB). */
  dataBlockSize?: bigint;
  /** Free data blocks at which the kernel raises a dm event (default 32768). */
  lowWaterMark?: bigint;
  features?: ThinPoolFeature[];
  uuid?: string;
}

/** Usage numbers of a healthy pool, in blocks. */
export interface PoolUsage {
  dataUsed: bigint;
  dataTotal: bigint;
  dataFree: bigint;
  metadataUsed: bigint;
  metadataTotal: bigint;
  metadataFree: bigint;
}

/** Creates `file` as a sparse file of `size` bytes unless it exists. Returns true when it created it. */
export function ensureSparseFile(file: string, size: bigint | number): boolean {
  bytesToSectors(size, `size of ${file}`);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    fs.ftruncateSync(fd, Number(size));
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** A thin pool device and the loop devices under it. */
export class ThinPool {
  /** Thin devices this object activated, by dm name. */
  readonly #active = new Map<string, number>();

  private constructor(
    readonly dm: DeviceMapper,
    readonly name: string,
    readonly info: DeviceInfo,
    readonly dataLoop: LoopDevice,
    readonly metadataLoop: LoopDevice,
    readonly dataBlockSize: bigint,
  ) {}

  /**
   * Creates the files when missing, attaches them to loop devices and creates
   * the pool `0 <data sectors> thin-pool <meta dev> <data dev> <block size>
   * <low water mark> [features]`. On failure everything created is undone.
   */
  static async create(dm: DeviceMapper, options: CreatePoolOptions): Promise<ThinPool> {
    const dataBlockSize = options.dataBlockSize ?? DEFAULT_DATA_BLOCK_SIZE;
    checkDataBlockSize(dataBlockSize);
    const dataSectors = bytesToSectors(options.dataSize, 'dataSize');
    const metadataSectors = bytesToSectors(options.metadataSize, 'metadataSize');
    if (dataSectors < dataBlockSize) {
      throw new DmError(
        DmErrorCode.INVALID_ARGUMENT,
        `Invalid dataSize ${options.dataSize} bytes: the pool needs at least one data block of ${dataBlockSize} sectors`,
        { device: options.name },
      );
    }
    if (dm.info(options.name).exists) {
      throw new DmError('EBUSY', `Cannot create pool "${options.name}": a device of that name already exists; remove it or pick another name`, {
        command: 'DM_DEV_CREATE',
        device: options.name,
      });
    }
    const createdFiles: string[] = [];
    const loops: LoopDevice[] = [];
    try {
      if (ensureSparseFile(options.dataFile, dataSectors * 512n)) createdFiles.push(options.dataFile);
      if (ensureSparseFile(options.metadataFile, metadataSectors * 512n)) createdFiles.push(options.metadataFile);
      const metaFileSectors = fileSizeSectors(options.metadataFile);
      if (metaFileSectors > THIN_METADATA_MAX_SECTORS) {
        debug('metadata file %s has %s sectors; the kernel uses only the first %s', options.metadataFile, metaFileSectors, THIN_METADATA_MAX_SECTORS);
      }
      const dataLoop = attachLoop(options.dataFile);
      loops.push(dataLoop);
      const metadataLoop = attachLoop(options.metadataFile);
      loops.push(metadataLoop);
      // A pool's length must be whole data blocks: drop a partial last block.
      const length = (dataLoop.sizeSectors() / dataBlockSize) * dataBlockSize;
      const table = [
        thinPoolTarget(0n, length, {
          metadataDev: metadataLoop.devString,
          dataDev: dataLoop.devString,
          dataBlockSize,
          lowWaterMark: options.lowWaterMark ?? DEFAULT_LOW_WATER_MARK,
          features: options.features ?? [],
        }),
      ];
      const info = await dm.createDevice(options.name, { table, uuid: options.uuid });
      debug('created pool %s over %s and %s', options.name, dataLoop.path, metadataLoop.path);
      return new ThinPool(dm, options.name, info, dataLoop, metadataLoop, dataBlockSize);
    } catch (error) {
      for (const loop of loops) detachQuietly(loop);
      for (const file of createdFiles) fs.rmSync(file, { force: true });
      throw error;
    }
  }

  /** The pool device as `major:minor`. */
  get devString(): string {
    return `${this.info.major}:${this.info.minor}`;
  }

  /** Parsed status of the pool (flushes first unless `noflush`). */
  status(options: { noflush?: boolean } = {}): ThinPoolStatus {
    const [target] = this.dm.status(this.name, options);
    return parseThinPoolStatus(target.params);
  }

  /** Used, total and free data and metadata blocks; throws when the pool has failed. */
  usage(): PoolUsage {
    const status = this.status();
    if (status.state !== 'ok') {
      throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Pool "${this.name}" reports status ${status.state}; check the kernel log`, {
        device: this.name,
      });
    }
    return {
      dataUsed: status.usedDataBlocks,
      dataTotal: status.totalDataBlocks,
      dataFree: status.totalDataBlocks - status.usedDataBlocks,
      metadataUsed: status.usedMetadataBlocks,
      metadataTotal: status.totalMetadataBlocks,
      metadataFree: status.totalMetadataBlocks - status.usedMetadataBlocks,
    };
  }

  /** Sends `create_thin <id>`: a new, empty thin volume. */
  createThin(deviceId: number): void {
    checkDeviceId(deviceId, this.name);
    this.#message(`create_thin ${deviceId}`, deviceId);
  }

  /**
   * Sends `create_snap <id> <origin id>`. When the origin is active here, it
   * is suspended around the message so the snapshot sees no half-written block.
   */
  createSnapshot(deviceId: number, originId: number): Promise<void> {
    checkDeviceId(deviceId, this.name);
    checkDeviceId(originId, this.name);
    const originName = [...this.#active].find(([, id]) => id === originId)?.[0];
    return this.#withSuspended(originName, () => this.#message(`create_snap ${deviceId} ${originId}`, deviceId));
  }

  /** Sends `delete <id>`; with `ignoreMissing`, an id the pool lacks (ENODATA) is fine. */
  deleteThin(deviceId: number, options: { ignoreMissing?: boolean } = {}): void {
    checkDeviceId(deviceId, this.name);
    const active = [...this.#active].find(([, id]) => id === deviceId);
    if (active) {
      throw new DmError('EBUSY', `Thin device ${deviceId} of pool "${this.name}" is active as "${active[0]}"; deactivate it before deleting it`, {
        command: 'DM_TARGET_MSG',
        device: this.name,
      });
    }
    try {
      this.#message(`delete ${deviceId}`, deviceId);
    } catch (error) {
      if (options.ignoreMissing && error instanceof DmError && error.errno === ENODATA) return;
      throw error;
    }
  }

  /** Activates thin device `deviceId` as dm device `name` of `sizeSectors` sectors. */
  async activateThin(name: string, deviceId: number, sizeSectors: bigint): Promise<DeviceInfo> {
    checkDeviceId(deviceId, this.name);
    const table = [thinTarget(0n, sizeSectors, { poolDev: this.devString, deviceId })];
    const info = await this.dm.createDevice(name, { table });
    this.#active.set(name, deviceId);
    return info;
  }

  /** Removes the dm device of an active thin volume; the volume's data stays in the pool. */
  async deactivateThin(name: string): Promise<void> {
    await this.dm.remove(name, { retry: true, ignoreMissing: true });
    this.#active.delete(name);
  }

  /** Parsed status of the active thin device `name`. */
  thinStatus(name: string): ThinStatus {
    const [target] = this.dm.status(name);
    return parseThinStatus(target.params);
  }

  /** Sends `set_transaction_id <current> <next>`. */
  setTransactionId(current: bigint, next: bigint): void {
    this.dm.message(this.name, 0, `set_transaction_id ${current} ${next}`);
  }

  /**
   * Tears down in order: the thin devices this object activated, the pool,
   * then the loop devices. Errors are collected so one failure does not leave
   * the rest behind; the first one is thrown at the end.
   */
  async destroy(): Promise<void> {
    const errors: unknown[] = [];
    for (const name of [...this.#active.keys()]) {
      await this.deactivateThin(name).catch((error: unknown) => errors.push(error));
    }
    await this.dm.remove(this.name, { retry: true, ignoreMissing: true }).catch((error: unknown) => errors.push(error));
    if (errors.length === 0) {
      for (const loop of [this.dataLoop, this.metadataLoop]) detachQuietly(loop);
    }
    if (errors.length > 0) throw errors[0];
  }

  #message(message: string, deviceId: number): void {
    try {
      this.dm.message(this.name, 0, message);
    } catch (error) {
      if (error instanceof DmError && error.errno === EEXIST) {
        throw new DmError(error.code, `Thin device id ${deviceId} already exists in pool "${this.name}"; pick another id`, {
          errno: error.errno,
          syscall: 'ioctl',
          command: 'DM_TARGET_MSG',
          device: this.name,
          cause: error,
        });
      }
      if (error instanceof DmError && error.errno === ENODATA) {
        throw new DmError(error.code, `Thin device id ${deviceId} does not exist in pool "${this.name}"`, {
          errno: error.errno,
          syscall: 'ioctl',
          command: 'DM_TARGET_MSG',
          device: this.name,
          cause: error,
        });
      }
      throw error;
    }
  }

  async #withSuspended(name: string | undefined, action: () => void): Promise<void> {
    if (name === undefined) {
      action();
      return;
    }
    this.dm.suspend(name);
    try {
      action();
    } finally {
      await this.dm.resume(name);
    }
  }
}

function checkDeviceId(deviceId: number, pool: string): void {
  if (!Number.isInteger(deviceId) || deviceId < 0 || deviceId > THIN_MAX_DEV_ID) {
    throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid thin device id ${deviceId} for pool "${pool}": use an integer from 0 to ${THIN_MAX_DEV_ID}`, {
      device: pool,
    });
  }
}

function detachQuietly(loop: LoopDevice): void {
  try {
    loop.detach();
  } catch (error) {
    // ENXIO: autoclear already detached it once the pool let go.
    debug('detaching %s: %s', loop.path, (error as Error).message);
  }
}
