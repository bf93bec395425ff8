// Thin pools: create one over two sparse files on loop devices (the classic
// Docker layout) or over two block devices, or adopt one that exists; manage
// thin volumes and snapshots by pool messages; keep transaction ids and
// metadata snapshots; grow the data and metadata devices; tear everything
// down in order (thin devices, pool, loop devices).

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import { debuglog } from 'node:util';

import type { DeviceMapper } from '../dm/client.js';
import type { DeviceInfo } from '../dm/types.js';
import { decodeDev } from '../ioctl/codec.js';
import { DmError, DmErrorCode, systemError } from '../ioctl/errors.js';
import { attachLoop, fileSizeSectors, type LoopDevice } from '../loop/loop.js';
import { bytesToSectors, type Sectors, SECTOR_SIZE, sectors } from '../targets/table.js';
import {
  checkDataBlockSize,
  parseThinPoolParams,
  parseThinPoolStatus,
  THIN_METADATA_MAX_SECTORS,
  thinPoolTarget,
  type ThinPoolFeature,
  type ThinPoolHealthyStatus,
  type ThinPoolParams,
  type ThinPoolStatus,
} from '../targets/thin-pool.js';
import { parseThinStatus, THIN_MAX_DEV_ID, thinTarget, type ThinStatus } from '../targets/thin.js';
import {
  POOL_LOW_ON_SPACE,
  POOL_OUT_OF_DATA_SPACE,
  POOL_UNHEALTHY,
  PoolSpaceError,
  THIN_IDS_EXHAUSTED,
  TransactionIdMismatchError,
} from './errors.js';

const debug = debuglog('dm');
const { EEXIST, EINVAL, ENODATA } = osConstants.errno;
const SECTOR_BYTES = BigInt(SECTOR_SIZE);

/** Docker's defaults: 64 KiB data blocks and a low water mark of 32768 blocks. */
export const DEFAULT_DATA_BLOCK_SIZE = 128n;
export const DEFAULT_LOW_WATER_MARK = 32768n;
/** Ids createThin() tries after an EEXIST before it gives up. */
export const THIN_ID_ATTEMPTS = 64;
const PERCENT = 100n;

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

export interface CreatePoolOverDevicesOptions {
  name: string;
  /** Data device as a path (`/dev/sdb1`) or `major:minor`. */
  dataDevice: string;
  metadataDevice: string;
  dataBlockSize?: bigint;
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

/** Refuse new volumes and snapshots while less than this share of the pool is free. */
export interface SpaceGuard {
  /** Minimum free data blocks, in percent of all data blocks (Docker's dm.min_free_space, default 10). */
  minFreeDataPercent?: number;
  /** Minimum free metadata blocks, in percent of all metadata blocks. */
  minFreeMetadataPercent?: number;
}

export interface ActivateThinOptions {
  /** A read-only device whose contents unprovisioned blocks show. */
  externalOrigin?: string;
  readOnly?: boolean;
  uuid?: string;
}

/** Creates `file` as a sparse file of `size` bytes unless it exists. Returns true when it created it. */
export function ensureSparseFile(file: string, size: bigint | number): boolean {
  bytesToSectors(size, `size of ${file}`);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    const hint = code === 'ENOENT' ? '; create its folder first' : '';
    throw systemError(-((error as NodeJS.ErrnoException).errno ?? 0), `Creating the sparse file ${file} failed${hint}`, {
      syscall: 'open',
      path: file,
      cause: error,
    });
  }
  try {
    fs.ftruncateSync(fd, Number(size));
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** Usage of a healthy pool status, in blocks. */
export function poolUsage(status: ThinPoolHealthyStatus): PoolUsage {
  return {
    dataUsed: status.usedDataBlocks,
    dataTotal: status.totalDataBlocks,
    dataFree: status.totalDataBlocks - status.usedDataBlocks,
    metadataUsed: status.usedMetadataBlocks,
    metadataTotal: status.totalMetadataBlocks,
    metadataFree: status.totalMetadataBlocks - status.usedMetadataBlocks,
  };
}

/**
 * Throws when the pool cannot take a new volume: out_of_data_space always,
 * and fewer free blocks than `guard` requires. A pool with exactly the
 * required free blocks passes.
 */
export function checkPoolFreeSpace(pool: string, status: ThinPoolHealthyStatus, guard: SpaceGuard = {}): void {
  const usage = poolUsage(status);
  if (status.mode === 'out_of_data_space') {
    throw new PoolSpaceError(
      POOL_OUT_OF_DATA_SPACE,
      `Pool "${pool}" is out of data space (${usage.dataFree} of ${usage.dataTotal} blocks free); grow its data device before creating volumes`,
      'data',
      usage.dataFree,
      0n,
      { device: pool },
    );
  }
  const checks = [
    ['data', usage.dataFree, usage.dataTotal, guard.minFreeDataPercent],
    ['metadata', usage.metadataFree, usage.metadataTotal, guard.minFreeMetadataPercent],
  ] as const;
  for (const [resource, free, total, percent] of checks) {
    if (percent === undefined) continue;
    if (!Number.isInteger(percent) || percent < 0 || percent > Number(PERCENT)) {
      throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid minimum free ${resource} space ${percent}%: use an integer from 0 to 100`);
    }
    const required = (total * BigInt(percent)) / PERCENT;
    if (free < required) {
      throw new PoolSpaceError(
        POOL_LOW_ON_SPACE,
        `Pool "${pool}" has ${free} free ${resource} blocks, fewer than the ${required} (${percent}% of ${total}) required; grow the pool or free space`,
        resource,
        free,
        required,
        { device: pool },
      );
    }
  }
}

/** Where a pool's devices come from: files on loop devices this object attached, or devices it was given. */
type Backing = { kind: 'files'; dataLoop: LoopDevice; metadataLoop: LoopDevice } | { kind: 'devices' };

/** A thin pool device and, when it is file-backed, the loop devices under it. */
export class ThinPool {
  /** Thin devices this object activated, by dm name. */
  readonly #active = new Map<string, number>();
  /** Next id createThin() tries when it is given none. */
  #nextId = 1;
  #params: ThinPoolParams;
  #info: DeviceInfo;
  readonly #backing: Backing;
  /** Warnings raised while creating the pool, such as unusable metadata space. */
  readonly warnings: string[] = [];

  private constructor(
    readonly dm: DeviceMapper,
    readonly name: string,
    info: DeviceInfo,
    params: ThinPoolParams,
    backing: Backing,
  ) {
    this.#info = info;
    this.#params = params;
    this.#backing = backing;
  }

  /**
   * Creates the files when missing, attaches them to loop devices (with
   * autoclear, the descriptors kept open until destroy) and creates the pool
   * `0 <data sectors> thin-pool <meta dev> <data dev> <block size> <low water
   * mark> <#features> [features]`. On failure everything created is undone.
   */
  static async create(dm: DeviceMapper, options: CreatePoolOptions): Promise<ThinPool> {
    const dataBlockSize = sectors(options.dataBlockSize ?? DEFAULT_DATA_BLOCK_SIZE, 'data block size');
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
    checkFreeName(dm, options.name);
    const createdFiles: string[] = [];
    const loops: LoopDevice[] = [];
    try {
      if (ensureSparseFile(options.dataFile, dataSectors * SECTOR_BYTES)) createdFiles.push(options.dataFile);
      if (ensureSparseFile(options.metadataFile, metadataSectors * SECTOR_BYTES)) createdFiles.push(options.metadataFile);
      const warnings = metadataWarnings(options.metadataFile, fileSizeSectors(options.metadataFile));
      const dataLoop = attachLoop(options.dataFile);
      loops.push(dataLoop);
      const metadataLoop = attachLoop(options.metadataFile);
      loops.push(metadataLoop);
      const params: ThinPoolParams = {
        metadataDev: metadataLoop.devString,
        dataDev: dataLoop.devString,
        dataBlockSize,
        lowWaterMark: options.lowWaterMark ?? DEFAULT_LOW_WATER_MARK,
        features: options.features ?? [],
      };
      const length = wholeBlocks(sectors(dataLoop.sizeSectors()), dataBlockSize, options.name);
      const info = await dm.createDevice(options.name, { table: [thinPoolTarget(sectors(0), length, params)], uuid: options.uuid });
      debug('created pool %s over %s and %s', options.name, dataLoop.path, metadataLoop.path);
      const pool = new ThinPool(dm, options.name, info, params, { kind: 'files', dataLoop, metadataLoop });
      pool.warnings.push(...warnings);
      return pool;
    } catch (error) {
      for (const loop of loops) detachQuietly(loop);
      for (const file of createdFiles) fs.rmSync(file, { force: true });
      throw error;
    }
  }

  /** Creates a pool over two existing block devices; their contents are the caller's. */
  static async createOverDevices(dm: DeviceMapper, options: CreatePoolOverDevicesOptions): Promise<ThinPool> {
    const dataBlockSize = sectors(options.dataBlockSize ?? DEFAULT_DATA_BLOCK_SIZE, 'data block size');
    checkDataBlockSize(dataBlockSize);
    checkFreeName(dm, options.name);
    const dataSectors = blockDeviceSectors(options.dataDevice);
    const warnings = metadataWarnings(options.metadataDevice, blockDeviceSectors(options.metadataDevice));
    const params: ThinPoolParams = {
      metadataDev: options.metadataDevice,
      dataDev: options.dataDevice,
      dataBlockSize,
      lowWaterMark: options.lowWaterMark ?? DEFAULT_LOW_WATER_MARK,
      features: options.features ?? [],
    };
    const length = wholeBlocks(dataSectors, dataBlockSize, options.name);
    const info = await dm.createDevice(options.name, { table: [thinPoolTarget(sectors(0), length, params)], uuid: options.uuid });
    const pool = new ThinPool(dm, options.name, info, params, { kind: 'devices' });
    pool.warnings.push(...warnings);
    return pool;
  }

  /** Adopts the existing pool device `name`, reading its parameters from its live table. */
  static open(dm: DeviceMapper, name: string): ThinPool {
    const info = dm.info(name);
    if (!info.exists) {
      throw new DmError('ENXIO', `Pool "${name}" does not exist; create it first`, { errno: osConstants.errno.ENXIO, device: name });
    }
    const table = dm.table(name);
    if (table.length !== 1 || table[0].type !== 'thin-pool') {
      const types = table.map((target) => target.type).join(', ') || 'no table';
      throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Device "${name}" is not a thin pool: its table has ${types}`, { device: name });
    }
    return new ThinPool(dm, name, info, parseThinPoolParams(table[0].params), { kind: 'devices' });
  }

  /** The pool device as `major:minor`. */
  get devString(): string {
    return `${this.#info.major}:${this.#info.minor}`;
  }

  get info(): DeviceInfo {
    return this.#info;
  }

  /** The pool's table parameters as last loaded. */
  get params(): ThinPoolParams {
    return this.#params;
  }

  get dataBlockSize(): Sectors {
    return this.#params.dataBlockSize;
  }

  /** Free data blocks at which the kernel raises a dm event. */
  get lowWaterMark(): bigint {
    return this.#params.lowWaterMark;
  }

  /** The data file's loop device, for a pool this object created over files. */
  get dataLoop(): LoopDevice | undefined {
    return this.#backing.kind === 'files' ? this.#backing.dataLoop : undefined;
  }

  get metadataLoop(): LoopDevice | undefined {
    return this.#backing.kind === 'files' ? this.#backing.metadataLoop : undefined;
  }

  /** Names and ids of the thin devices this object activated. */
  get activeThins(): ReadonlyMap<string, number> {
    return this.#active;
  }

  /** Parsed status of the pool (commits the metadata first unless `noflush`). */
  status(options: { noflush?: boolean } = {}): ThinPoolStatus {
    const [target] = this.dm.status(this.name, options);
    return parseThinPoolStatus(target.params);
  }

  /** The status of a pool that can report usage; throws for Fail and Error. */
  healthyStatus(options: { noflush?: boolean } = {}): ThinPoolHealthyStatus {
    const status = this.status(options);
    if (status.state !== 'ok') {
      throw new DmError(POOL_UNHEALTHY, `Pool "${this.name}" reports status ${status.state}; check the kernel log and run thin_check on its metadata`, {
        device: this.name,
      });
    }
    return status;
  }

  /** Used, total and free data and metadata blocks; throws when the pool has failed. */
  usage(): PoolUsage {
    return poolUsage(this.healthyStatus());
  }

  /**
   * Sends `create_thin <id>`: a new, empty thin volume. Without an id, it
   * takes the next id this object has not used and, when the pool already
   * has that id (EEXIST), tries the following ones. Returns the id created.
   * `guard` refuses the volume while the pool is low on space.
   */
  createThin(deviceId?: number, options: { guard?: SpaceGuard } = {}): number {
    this.#checkWritable(options.guard);
    if (deviceId !== undefined) {
      checkDeviceId(deviceId, this.name);
      this.#message(`create_thin ${deviceId}`, deviceId);
      this.#nextId = Math.max(this.#nextId, deviceId + 1);
      return deviceId;
    }
    for (let attempt = 0; attempt < THIN_ID_ATTEMPTS && this.#nextId <= THIN_MAX_DEV_ID; attempt++) {
      const id = this.#nextId++;
      try {
        this.#message(`create_thin ${id}`, id);
        return id;
      } catch (error) {
        if (!(error instanceof DmError) || error.errno !== EEXIST) throw error;
        debug('pool %s already has thin id %d, trying the next one', this.name, id);
      }
    }
    throw new DmError(THIN_IDS_EXHAUSTED, `No free thin device id found in pool "${this.name}" after ${THIN_ID_ATTEMPTS} attempts; pass an id`, {
      device: this.name,
    });
  }

  /**
   * Sends `create_snap <id> <origin id>`. When the origin is active here, it
   * is suspended around the message so the snapshot sees no half-written
   * block; an inactive origin needs no suspend.
   */
  async createSnapshot(deviceId: number, originId: number, options: { guard?: SpaceGuard } = {}): Promise<void> {
    checkDeviceId(deviceId, this.name);
    checkDeviceId(originId, this.name);
    this.#checkWritable(options.guard);
    const originName = [...this.#active].find(([, id]) => id === originId)?.[0];
    await this.#withSuspended(originName, () => this.#message(`create_snap ${deviceId} ${originId}`, deviceId));
    this.#nextId = Math.max(this.#nextId, deviceId + 1);
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
      if (options.ignoreMissing && error instanceof DmError && error.errno === ENODATA) {
        debug('pool %s has no thin id %d; nothing to delete', this.name, deviceId);
        return;
      }
      throw error;
    }
  }

  /**
   * Activates thin device `deviceId` as dm device `name` of `size` sectors.
   * NOTE: `size` also accepts a plain bigint, counted in sectors, for
   * callers written before the Sectors type.
   */
  async activateThin(name: string, deviceId: number, size: Sectors | bigint, options: ActivateThinOptions = {}): Promise<DeviceInfo> {
    checkDeviceId(deviceId, this.name);
    const table = [thinTarget(sectors(0), sectors(size, 'thin volume size'), { poolDev: this.devString, deviceId, externalOrigin: options.externalOrigin })];
    const info = await this.dm.createDevice(name, { table, readOnly: options.readOnly, uuid: options.uuid });
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

  /** The pool's transaction id, from its status. */
  transactionId(): bigint {
    return this.healthyStatus({ noflush: true }).transactionId;
  }

  /**
   * Sends `set_transaction_id <current> <next>` after checking `current`
   * against the pool's own id. A mismatch, found first or reported by the
   * kernel as EINVAL, raises TransactionIdMismatchError with the id re-read
   * from the pool's status; the pool is left unchanged.
   */
  setTransactionId(current: bigint, next: bigint): void {
    const actual = this.transactionId();
    if (actual !== current) throw this.#mismatch(current, actual);
    try {
      this.dm.message(this.name, 0, `set_transaction_id ${current} ${next}`);
    } catch (error) {
      if (error instanceof DmError && error.errno === EINVAL) {
        const reread = this.transactionId();
        if (reread !== current) throw this.#mismatch(current, reread, error);
      }
      throw error;
    }
    debug('pool %s transaction id %s -> %s', this.name, current, next);
  }

  /** Sends `reserve_metadata_snap`: a metadata snapshot that thin_dump can read while the pool runs. */
  reserveMetadataSnapshot(): void {
    this.dm.message(this.name, 0, 'reserve_metadata_snap');
  }

  /** Sends `release_metadata_snap`. */
  releaseMetadataSnapshot(): void {
    this.dm.message(this.name, 0, 'release_metadata_snap');
  }

  /**
   * Grows a file-backed pool's data to `newSize` bytes: extends the data
   * file, makes the loop device follow (LOOP_SET_CAPACITY), loads the table
   * with the new length and resumes. Returns the new length in sectors.
   */
  async growData(newSize: bigint | number): Promise<Sectors> {
    const { dataLoop } = this.#fileBacking('grow its data');
    const wanted = bytesToSectors(newSize, 'new data size');
    const current = sectors(dataLoop.sizeSectors());
    if (wanted < current) {
      throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid new data size ${newSize} bytes: the data device has ${current} sectors and a pool cannot shrink`, {
        device: this.name,
      });
    }
    if (wanted > current) {
      fs.truncateSync(dataLoop.backingFile, Number(wanted * SECTOR_BYTES));
      dataLoop.refreshCapacity();
    }
    return this.refreshDataSize();
  }

  /**
   * Reloads the pool table with the length of its data device, for a data
   * device that was grown by other means, and resumes the pool.
   */
  async refreshDataSize(): Promise<Sectors> {
    const dataSectors = this.dataLoop ? sectors(this.dataLoop.sizeSectors()) : blockDeviceSectors(this.#params.dataDev);
    const length = wholeBlocks(dataSectors, this.#params.dataBlockSize, this.name);
    this.dm.load(this.name, [thinPoolTarget(sectors(0), length, this.#params)]);
    this.#info = await this.dm.resume(this.name);
    debug('pool %s data device now %s sectors', this.name, length);
    return length;
  }

  /**
   * Grows a file-backed pool's metadata to `newSize` bytes: extends the
   * file, refreshes the loop device, then suspends and resumes the pool,
   * which reads the new size on resume.
   */
  async growMetadata(newSize: bigint | number): Promise<void> {
    const { metadataLoop } = this.#fileBacking('grow its metadata');
    const wanted = bytesToSectors(newSize, 'new metadata size');
    const current = sectors(metadataLoop.sizeSectors());
    if (wanted < current) {
      throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Invalid new metadata size ${newSize} bytes: the metadata device has ${current} sectors and cannot shrink`, {
        device: this.name,
      });
    }
    this.warnings.push(...metadataWarnings(metadataLoop.backingFile, wanted));
    fs.truncateSync(metadataLoop.backingFile, Number(wanted * SECTOR_BYTES));
    metadataLoop.refreshCapacity();
    this.dm.suspend(this.name);
    this.#info = await this.dm.resume(this.name);
  }

  /**
   * Tears down in order: the thin devices this object activated, the pool,
   * then the loop devices. Errors are collected so one failure does not leave
   * the rest behind; the first one is thrown at the end. The loop devices are
   * detached only after the pool is gone.
   */
  async destroy(): Promise<void> {
    const errors: unknown[] = [];
    for (const name of [...this.#active.keys()]) {
      await this.deactivateThin(name).catch((error: unknown) => errors.push(error));
    }
    await this.dm.remove(this.name, { retry: true, ignoreMissing: true }).catch((error: unknown) => errors.push(error));
    if (errors.length === 0 && this.#backing.kind === 'files') {
      for (const loop of [this.#backing.dataLoop, this.#backing.metadataLoop]) detachQuietly(loop);
    }
    if (errors.length > 0) throw errors[0];
  }

  #checkWritable(guard: SpaceGuard | undefined): void {
    const status = this.healthyStatus({ noflush: true });
    if (status.mode === 'ro' || status.needsCheck) {
      throw new DmError(POOL_UNHEALTHY, `Pool "${this.name}" is ${status.needsCheck ? 'marked needs_check' : 'read-only'}; check its metadata with thin_check before changing it`, {
        device: this.name,
      });
    }
    checkPoolFreeSpace(this.name, status, guard);
  }

  #fileBacking(what: string): { dataLoop: LoopDevice; metadataLoop: LoopDevice } {
    if (this.#backing.kind !== 'files') {
      throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Pool "${this.name}" is not backed by files this object attached, so it cannot ${what}; grow the device, then call refreshDataSize()`, {
        device: this.name,
      });
    }
    return this.#backing;
  }

  #mismatch(expected: bigint, actual: bigint, cause?: unknown): TransactionIdMismatchError {
    return new TransactionIdMismatchError(
      `Transaction id mismatch on pool "${this.name}": expected ${expected} but the pool has ${actual}; reconcile the stored id with the pool's`,
      expected,
      actual,
      { device: this.name, command: 'DM_TARGET_MSG', cause },
    );
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

function checkFreeName(dm: DeviceMapper, name: string): void {
  if (dm.info(name).exists) {
    throw new DmError('EBUSY', `Cannot create pool "${name}": a device of that name already exists; remove it or pick another name`, {
      command: 'DM_DEV_CREATE',
      device: name,
    });
  }
}

/** `dataSectors` rounded down to whole data blocks: the pool drops a partial last block. */
function wholeBlocks(dataSectors: Sectors, blockSize: Sectors, pool: string): Sectors {
  const length = (dataSectors / blockSize) * blockSize;
  if (length === 0n) {
    throw new DmError(DmErrorCode.INVALID_ARGUMENT, `The data device of pool "${pool}" has ${dataSectors} sectors, less than one data block of ${blockSize}`, {
      device: pool,
    });
  }
  return length as Sectors;
}

/** Warns about metadata beyond what the kernel uses (THIN_METADATA_MAX_SECTORS). */
function metadataWarnings(what: string, metadataSectors: bigint): string[] {
  if (metadataSectors <= THIN_METADATA_MAX_SECTORS) return [];
  const warning = `Metadata device ${what} has ${metadataSectors} sectors; the kernel uses only the first ${THIN_METADATA_MAX_SECTORS} (about 15.9 GiB)`;
  debug('%s', warning);
  return [warning];
}

/** Size of a block device given as a path or `major:minor`, from /sys/dev/block. */
function blockDeviceSectors(device: string): Sectors {
  let devNumber = device;
  if (device.startsWith('/')) {
    const stat = fs.statSync(device, { bigint: true });
    if (!stat.isBlockDevice()) throw new DmError(DmErrorCode.INVALID_ARGUMENT, `${device} is not a block device; pass a block device or major:minor`, { path: device });
    const { major, minor } = decodeDev(stat.rdev);
    devNumber = `${major}:${minor}`;
  }
  const sizeFile = `/sys/dev/block/${devNumber}/size`;
  try {
    return sectors(BigInt(fs.readFileSync(sizeFile, 'utf8').trim()));
  } catch (error) {
    throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Cannot read the size of block device ${device} from ${sizeFile}: ${(error as Error).message}`, {
      path: sizeFile,
      cause: error,
    });
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
