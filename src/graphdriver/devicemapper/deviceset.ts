// The device set: thin devices in one pool, one per layer, each a snapshot
// of its parent's. Their metadata is kept in step with the pool's
// transaction id, so the next start rolls back a crash at any step.

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { debuglog } from 'node:util';

import { DeviceMapper } from '../../dm/client.js';
import { DmError, DmErrorCode } from '../../ioctl/errors.js';
import { mount, umount } from '../../ioctl/mount.js';
import type { ProgressEvent, StatusPair } from '../driver.js';
import { GraphDriverErrorCode, driverError } from '../errors.js';
import { mountPointsUnder } from '../mounts.js';
import { driverLibc, LOCK_EX, LOCK_NB, LOCK_UN } from '../sys.js';
import { humanSize } from '../units.js';
import { makeFilesystem, readExt4Uuid, requireMkfs } from './ext4.js';
import {
  BASE_HASH,
  MetadataStore,
  planRecovery,
  type DeviceRecord,
  type DeviceSetRecord,
  type TransactionRecord,
} from './metadata.js';
import { SECTOR_BYTES, type DeviceSetOptions } from './options.js';
import { thinTable } from './tables.js';
import { checkPoolSpace, createLoopPool, loopPoolFiles, METADATA_BLOCK_BYTES, readPoolStatus } from './pool.js';

const debug = debuglog('dm');
const { EEXIST, ENODATA, EINVAL, EWOULDBLOCK } = osConstants.errno;

/** Largest thin device id: the pool keeps 24 bits (MAX_DEV_ID in dm-thin.c). */
export const MAX_DEVICE_ID = (1 << 24) - 1;
/** Ids tried when the pool reports one after another as taken (EEXIST). */
const DEVICE_ID_ATTEMPTS = 64;
/** Environment variable naming a crash step, for recovery tests. */
export const CRASH_AT_ENV = 'DM_GRAPHDRIVER_CRASH_AT';
/** Folder inside each layer's filesystem that the driver hands out, so lost+found stays out of layers. */
export const ROOTFS_FOLDER = 'rootfs';
/** Layer ids that would clash with the device set's own dm device names. */
export const RESERVED_IDS = ['base', 'pool'];

/** The steps a crash test can stop at, in the order create and remove run them. */
export const CRASH_STEPS = [
  'base:after-open-transaction',
  'base:after-create-thin',
  'base:after-set-transaction-id',
  'base:after-mkfs',
  'create:after-open-transaction',
  'create:after-create-snap',
  'create:after-register',
  'create:after-set-transaction-id',
  'create:after-close-transaction',
  'remove:after-deactivate',
  'remove:after-open-transaction',
  'remove:after-delete',
  'remove:after-unregister',
  'remove:after-set-transaction-id',
] as const;
export type CrashStep = (typeof CRASH_STEPS)[number];

export interface DeviceSetConfig {
  options: DeviceSetOptions;
  onProgress?: (event: ProgressEvent) => void;
  crashAt?: string;
  /** True when the device-mapper handle waits for udev through cookies (reported as "Udev Sync Supported"). */
  udevSync?: boolean;
}

/** A device a start-up found committed by a transaction the pool never reached, and deleted. */
export interface LostDevice {
  hash: string;
  deviceId: number;
}

export class DeviceSet {
  readonly metadata: MetadataStore;
  readonly #mountCounts = new Map<string, number>();
  readonly #devices = new Map<string, DeviceRecord>();
  #dm: DeviceMapper | undefined;
  #lockFd: number | undefined;
  #poolDev = '';
  #createdPool = false;
  #transactionId = 0;
  #deviceSet: DeviceSetRecord = { next_device_id: 1 };
  readonly lostDevices: LostDevice[] = [];
  readonly warnings: string[];
  prefix = '';
  backingFilesystem = '';

  private constructor(
    readonly home: string,
    readonly config: DeviceSetConfig,
  ) {
    this.metadata = new MetadataStore(path.join(home, 'metadata'));
    this.warnings = [...config.options.warnings];
  }

  get options(): DeviceSetOptions {
    return this.config.options;
  }

  get poolName(): string {
    return this.options.thinPoolDevice ?? `${this.prefix}-pool`;
  }

  get dm(): DeviceMapper {
    if (!this.#dm) throw new DmError(DmErrorCode.CLOSED, `The devicemapper driver in ${this.home} was cleaned up; create a new one`);
    return this.#dm;
  }

  /** True after shutdown() or a failed open. */
  get closed(): boolean {
    return this.#dm === undefined;
  }

  /** The pool's transaction id as this device set last set or read it. */
  get transactionId(): number {
    return this.#transactionId;
  }

  /** Opens (and on first use creates) the device set in `<root>/devicemapper`. */
  static async open(root: string, config: DeviceSetConfig, dm: DeviceMapper): Promise<DeviceSet> {
    const set = new DeviceSet(path.join(root, 'devicemapper'), config);
    set.#dm = dm;
    try {
      await set.#init();
    } catch (error) {
      // A pool this open created goes again, so a failed start leaves no device behind.
      if (set.#createdPool) await set.shutdown().catch((cleanupError: unknown) => debug('devicemapper: undoing the start failed: %s', (cleanupError as Error).message));
      set.#release();
      throw error;
    }
    return set;
  }

  async #init(): Promise<void> {
    fs.mkdirSync(path.join(this.home, 'mnt'), { recursive: true, mode: 0o700 });
    this.#lock();
    this.metadata.ensure();
    const stat = fs.statSync(this.home, { bigint: true });
    const major = Number((stat.dev >> 8n) & 0xfffn);
    const minor = Number((stat.dev & 0xffn) | ((stat.dev >> 12n) & 0xfff00n));
    this.prefix = this.options.devicePrefix ?? `docker-${major}:${minor}-${stat.ino}`;
    this.#deviceSet = this.metadata.readDeviceSet() ?? { next_device_id: 1 };
    for (const [hash, record] of this.metadata.readAll()) this.#devices.set(hash, record);
    this.#adoptMounts();
    await this.#deactivateStale();
    await this.#ensurePool();
    this.#transactionId = Number(readPoolStatus(this.dm, this.poolName).transactionId);
    await this.#recover(this.metadata.readTransaction());
    await this.#retryDeferredDeletions();
    await this.#setupBase();
  }

  #lock(): void {
    const fd = fs.openSync(path.join(this.home, 'lock'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    const result = driverLibc().flock(fd, LOCK_EX | LOCK_NB);
    if (result < 0) {
      fs.closeSync(fd);
      if (-result === EWOULDBLOCK) {
        throw driverError(GraphDriverErrorCode.ROOT_LOCKED, `Another process uses the devicemapper driver in ${this.home}; stop it first or use another root`, {
          path: this.home,
        });
      }
      throw driverError(GraphDriverErrorCode.ROOT_LOCKED, `Locking ${this.home} failed with errno ${-result}`, { errno: -result, syscall: 'flock', path: this.home });
    }
    this.#lockFd = fd;
  }

  #release(): void {
    this.#dm = undefined;
    if (this.#lockFd !== undefined) {
      driverLibc().flock(this.#lockFd, LOCK_UN);
      fs.closeSync(this.#lockFd);
      this.#lockFd = undefined;
    }
  }

  #crashPoint(step: CrashStep): void {
    const crashAt = this.config.crashAt ?? process.env[CRASH_AT_ENV];
    if (crashAt !== step) return;
    debug('devicemapper: crash test, killing the process at %s', step);
    process.kill(process.pid, 'SIGKILL');
  }

  /** Returns the dm device name of a layer, or of the base device for "". */
  deviceName(hash: string): string {
    return `${this.prefix}-${hash === BASE_HASH ? 'base' : hash}`;
  }

  /**
   * Takes over layers an earlier process left mounted (`dmctl driver mount`,
   * or a crash) with one reference each, so a later put() unmounts them.
   * Any other mount below mnt/ is stale and unmounted.
   */
  #adoptMounts(): void {
    const mntDir = path.join(this.home, 'mnt');
    for (const point of mountPointsUnder(mntDir)) {
      const hash = path.relative(mntDir, point);
      if (path.dirname(point) === mntDir && this.hasDevice(hash)) {
        debug('devicemapper: adopting mounted layer %s', hash);
        this.#mountCounts.set(hash, 1);
        continue;
      }
      debug('devicemapper: unmounting stale %s', point);
      umount(point, { lazy: true });
    }
  }

  /** Removes devices of this set that an earlier process left active and no adopted mount uses. */
  async #deactivateStale(): Promise<void> {
    const pool = this.poolName;
    const mounted = new Set([...this.#mountCounts.keys()].map((hash) => this.deviceName(hash)));
    for (const device of this.dm.listDevices()) {
      if (device.name === pool || mounted.has(device.name) || !device.name.startsWith(`${this.prefix}-`)) continue;
      debug('devicemapper: removing stale device %s', device.name);
      await this.dm.remove(device.name, { retry: true, ignoreMissing: true });
    }
  }

  async #ensurePool(): Promise<void> {
    const info = this.dm.info(this.poolName);
    if (!info.exists) {
      if (this.options.thinPoolDevice !== undefined) {
        throw driverError(GraphDriverErrorCode.NOT_SUPPORTED, `Thin pool ${this.options.thinPoolDevice} named by dm.thinpooldev does not exist; create it first`, {
          device: this.options.thinPoolDevice,
        });
      }
      this.#progress('base', 0, 'thin pool');
      await createLoopPool(this.dm, this.poolName, this.home, this.options);
      this.#createdPool = true;
    }
    const pool = this.dm.info(this.poolName);
    if (!pool.exists) throw driverError(GraphDriverErrorCode.NOT_SUPPORTED, `Thin pool ${this.poolName} vanished while starting`);
    this.#poolDev = `${pool.major}:${pool.minor}`;
    readPoolStatus(this.dm, this.poolName);
  }

  #progress(operation: string, done: number, step: string, total = BASE_SETUP_STEPS): void {
    this.config.onProgress?.({ operation, done, total, unit: 'steps', step });
  }

  /** Drops an adopted mount of a device that recovery is about to delete. */
  async #forget(hash: string): Promise<void> {
    if (this.#mountCounts.delete(hash)) umount(this.#mountPoint(hash), { lazy: true });
    await this.#deactivate(hash, { deferred: false });
  }

  /** Applies the recovery plan: roll back the open transaction, delete lost devices. */
  async #recover(transaction: TransactionRecord | undefined): Promise<void> {
    const plan = planRecovery(this.#transactionId, transaction, this.#devices);
    if (plan.rollback) {
      const { hash, deviceId, dropRecord } = plan.rollback;
      debug('devicemapper: rolling back transaction %d (device %s, id %d)', transaction?.open_transaction_id, hash || 'base', deviceId);
      if (dropRecord) await this.#forget(hash);
      this.#deleteThin(deviceId);
      if (dropRecord) {
        this.metadata.removeDevice(hash);
        this.#devices.delete(hash);
      }
    }
    for (const lost of plan.lost) {
      debug('devicemapper: removing lost device %s (id %d)', lost.hash || 'base', lost.deviceId);
      await this.#forget(lost.hash);
      this.#deleteThin(lost.deviceId);
      this.metadata.removeDevice(lost.hash);
      this.#devices.delete(lost.hash);
      this.lostDevices.push(lost);
    }
    this.metadata.writeTransaction({ open_transaction_id: this.#transactionId, device_hash: BASE_HASH, device_id: 0 });
  }

  /** Sends `delete <id>`; an id the pool no longer has (ENODATA) counts as deleted. */
  #deleteThin(deviceId: number): void {
    try {
      this.dm.message(this.poolName, 0, `delete ${deviceId}`);
    } catch (error) {
      if (error instanceof DmError && error.errno === ENODATA) {
        debug('devicemapper: thin id %d was already deleted', deviceId);
        return;
      }
      throw error;
    }
  }

  #openTransaction(hash: string, deviceId: number): number {
    const open = this.#transactionId + 1;
    this.metadata.writeTransaction({ open_transaction_id: open, device_hash: hash, device_id: deviceId });
    return open;
  }

  /** Commits the open transaction: `set_transaction_id <current> <open>` on the pool. */
  #commitTransaction(open: number, step: CrashStep): void {
    try {
      this.dm.message(this.poolName, 0, `set_transaction_id ${this.#transactionId} ${open}`);
    } catch (error) {
      if (error instanceof DmError && error.errno === EINVAL) {
        const actual = Number(readPoolStatus(this.dm, this.poolName).transactionId);
        throw Object.assign(
          driverError(
            GraphDriverErrorCode.TRANSACTION_ID_MISMATCH,
            `Thin pool ${this.poolName} has transaction id ${actual}, but this driver expected ${this.#transactionId}; restart the driver to roll back`,
            { device: this.poolName, cause: error },
          ),
          { expected: this.#transactionId, actual },
        );
      }
      throw error;
    }
    this.#transactionId = open;
    this.#crashPoint(step);
    this.metadata.writeTransaction({ open_transaction_id: open, device_hash: BASE_HASH, device_id: 0 });
  }

  #usedDeviceIds(): Set<number> {
    return new Set([...this.#devices.values()].map((record) => record.device_id));
  }

  #allocateDeviceId(used: Set<number>): number {
    for (let i = 0; i < MAX_DEVICE_ID; i++) {
      const id = ((this.#deviceSet.next_device_id + i - 1) % MAX_DEVICE_ID) + 1;
      if (!used.has(id)) {
        this.#deviceSet.next_device_id = (id % MAX_DEVICE_ID) + 1;
        return id;
      }
    }
    throw driverError(GraphDriverErrorCode.POOL_LOW_ON_SPACE, `Thin pool ${this.poolName} has no free device id left; remove layers`);
  }

  /**
   * Sends `create_thin` or `create_snap` with a fresh id inside an open
   * transaction; an id the pool already has (EEXIST) is skipped. Returns the
   * id and the open transaction.
   */
  #createThinDevice(hash: string, originId: number | undefined, operation: 'base' | 'create'): { deviceId: number; open: number } {
    const used = this.#usedDeviceIds();
    for (let attempt = 1; attempt <= DEVICE_ID_ATTEMPTS; attempt++) {
      const deviceId = this.#allocateDeviceId(used);
      const open = this.#openTransaction(hash, deviceId);
      this.#crashPoint(`${operation}:after-open-transaction`);
      const message = originId === undefined ? `create_thin ${deviceId}` : `create_snap ${deviceId} ${originId}`;
      try {
        this.dm.message(this.poolName, 0, message);
        return { deviceId, open };
      } catch (error) {
        if (!(error instanceof DmError && error.errno === EEXIST)) {
          this.metadata.writeTransaction({ open_transaction_id: this.#transactionId, device_hash: BASE_HASH, device_id: 0 });
          throw error;
        }
        debug('devicemapper: thin id %d exists in pool %s without metadata, trying the next', deviceId, this.poolName);
        used.add(deviceId);
      }
    }
    throw driverError(GraphDriverErrorCode.POOL_LOW_ON_SPACE, `Thin pool ${this.poolName} reported ${DEVICE_ID_ATTEMPTS} ids in a row as taken; check the pool with thin_dump`);
  }

  #saveDeviceSet(): void {
    this.metadata.writeDeviceSet(this.#deviceSet);
  }

  hasDevice(hash: string): boolean {
    const record = this.#devices.get(hash);
    return record !== undefined && record.initialized && !record.deleted;
  }

  device(hash: string): DeviceRecord | undefined {
    return this.hasDevice(hash) ? this.#devices.get(hash) : undefined;
  }

  /** Ids of every stored layer (the base excluded). */
  layerIds(): string[] {
    return [...this.#devices.keys()].filter((hash) => hash !== BASE_HASH && this.hasDevice(hash)).sort();
  }

  /** Creates layer `hash` as a snapshot of `parent` (the base device when absent). */
  async createDevice(hash: string, parent?: string): Promise<void> {
    const origin = this.device(parent ?? BASE_HASH);
    if (!origin) {
      throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Parent layer ${parent} of ${hash} does not exist in ${this.home}`);
    }
    if (this.#devices.has(hash)) {
      throw driverError(GraphDriverErrorCode.LAYER_EXISTS, `Layer ${hash} already exists in ${this.home}; remove it first or pick another id`);
    }
    checkPoolSpace(readPoolStatus(this.dm, this.poolName), this.options.minFreeSpacePercent, this.poolName);
    const originName = this.deviceName(parent ?? BASE_HASH);
    // A snapshot of an active origin needs the origin suspended, so no write is half in the snapshot.
    const suspend = this.dm.info(originName).exists;
    if (suspend) this.dm.suspend(originName);
    let created: { deviceId: number; open: number };
    try {
      created = this.#createThinDevice(hash, origin.device_id, 'create');
    } finally {
      if (suspend) await this.dm.resume(originName);
    }
    this.#crashPoint('create:after-create-snap');
    const record: DeviceRecord = { device_id: created.deviceId, size: origin.size, transaction_id: created.open, initialized: true };
    if (parent !== undefined) record.parent = parent;
    try {
      this.metadata.writeDevice(hash, record);
      this.#devices.set(hash, record);
      this.#crashPoint('create:after-register');
    } catch (error) {
      this.#abortCreate(hash, created.deviceId);
      throw error;
    }
    this.#commitTransaction(created.open, 'create:after-set-transaction-id');
    this.#crashPoint('create:after-close-transaction');
    this.#saveDeviceSet();
    debug('devicemapper: created %s as thin id %d (snapshot of %d), transaction %d', hash, created.deviceId, origin.device_id, created.open);
  }

  /** Undoes a create whose transaction did not commit: the new thin id and its record go. */
  #abortCreate(hash: string, deviceId: number): void {
    try {
      this.#deleteThin(deviceId);
      this.metadata.removeDevice(hash);
      this.#devices.delete(hash);
      this.metadata.writeTransaction({ open_transaction_id: this.#transactionId, device_hash: BASE_HASH, device_id: 0 });
    } catch (error) {
      // The open transaction record stays, so the next start rolls it back.
      debug('devicemapper: undoing the create of %s failed: %s', hash, (error as Error).message);
    }
  }

  /** Deactivates and deletes layer `hash`; it must not be mounted. */
  async deleteDevice(hash: string): Promise<void> {
    const record = this.#devices.get(hash);
    if (!record || !record.initialized) throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Layer ${hash} does not exist in ${this.home}`);
    const mounted = this.#mountCounts.get(hash) ?? 0;
    if (mounted > 0) {
      throw driverError(GraphDriverErrorCode.LAYER_BUSY, `Layer ${hash} is mounted (${mounted} reference(s)); call put() before removing it`);
    }
    // The thin device must be gone from the kernel before the pool deletes its id.
    try {
      await this.#deactivate(hash, { deferred: false });
    } catch (error) {
      if (!(error instanceof DmError && error.busy && this.options.deferredDeletion)) throw error;
      debug('devicemapper: %s is busy, marking it for deferred deletion', hash);
      record.deleted = true;
      this.metadata.writeDevice(hash, record);
      return;
    }
    this.#crashPoint('remove:after-deactivate');
    const open = this.#openTransaction(hash, record.device_id);
    this.#crashPoint('remove:after-open-transaction');
    this.#deleteThin(record.device_id);
    this.#crashPoint('remove:after-delete');
    this.metadata.removeDevice(hash);
    this.#devices.delete(hash);
    this.#crashPoint('remove:after-unregister');
    this.#commitTransaction(open, 'remove:after-set-transaction-id');
    debug('devicemapper: deleted %s (thin id %d), transaction %d', hash, record.device_id, open);
  }

  async #retryDeferredDeletions(): Promise<void> {
    for (const [hash, record] of [...this.#devices]) {
      if (!record.deleted) continue;
      try {
        record.deleted = false;
        await this.deleteDevice(hash);
      } catch (error) {
        record.deleted = true;
        debug('devicemapper: deferred deletion of %s failed again: %s', hash, (error as Error).message);
      }
    }
  }

  /** Activates the thin device of `hash` unless it is active already. */
  async #activate(hash: string): Promise<string> {
    const record = this.#devices.get(hash) as DeviceRecord;
    const name = this.deviceName(hash);
    if (!this.dm.info(name).exists) {
      const sectors = BigInt(record.size) / SECTOR_BYTES;
      await this.dm.createDevice(name, { table: [thinTable(sectors, this.#poolDev, record.device_id)] });
    }
    return `/dev/mapper/${name}`;
  }

  async #deactivate(hash: string, options: { deferred: boolean }): Promise<void> {
    await this.dm.remove(this.deviceName(hash), { retry: true, ignoreMissing: true, deferred: options.deferred });
  }

  #mountPoint(hash: string): string {
    return path.join(this.home, 'mnt', hash === BASE_HASH ? '.base' : hash);
  }

  /** Mounts layer `hash` (reference counted) and returns its rootfs folder. */
  async mountDevice(hash: string): Promise<string> {
    if (!this.hasDevice(hash)) throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Layer ${hash} does not exist in ${this.home}`);
    const target = this.#mountPoint(hash);
    const count = this.#mountCounts.get(hash) ?? 0;
    if (count === 0) {
      const device = await this.#activate(hash);
      fs.mkdirSync(target, { recursive: true, mode: 0o755 });
      try {
        mount(device, target, this.backingFilesystem || this.options.filesystem, { data: this.options.mountOptions || undefined });
      } catch (error) {
        await this.#deactivate(hash, { deferred: false }).catch(() => undefined);
        throw error;
      }
    }
    this.#mountCounts.set(hash, count + 1);
    return path.join(target, ROOTFS_FOLDER);
  }

  /** Releases one mountDevice(); the last release unmounts and deactivates. */
  async unmountDevice(hash: string): Promise<void> {
    const count = this.#mountCounts.get(hash) ?? 0;
    if (count === 0) throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Layer ${hash} is not mounted; call put() once per get()`);
    if (count > 1) {
      this.#mountCounts.set(hash, count - 1);
      return;
    }
    umount(this.#mountPoint(hash));
    this.#mountCounts.delete(hash);
    await this.#deactivate(hash, { deferred: this.options.deferredRemoval });
  }

  async #setupBase(): Promise<void> {
    const base = this.#devices.get(BASE_HASH);
    if (base && !base.initialized) {
      debug('devicemapper: base device (id %d) was never initialized, recreating it', base.device_id);
      await this.#deactivate(BASE_HASH, { deferred: false });
      const open = this.#openTransaction(BASE_HASH, base.device_id);
      this.#deleteThin(base.device_id);
      this.metadata.removeDevice(BASE_HASH);
      this.#devices.delete(BASE_HASH);
      this.#commitTransaction(open, 'remove:after-set-transaction-id');
    }
    if (this.#devices.has(BASE_HASH)) await this.#verifyBase();
    else await this.#createBase();
  }

  async #createBase(): Promise<void> {
    const mkfs = requireMkfs(this.options.filesystem);
    const progress = (done: number, step: string): void => this.#progress('base', done, step);
    progress(1, 'create thin device');
    const { deviceId, open } = this.#createThinDevice(BASE_HASH, undefined, 'base');
    this.#crashPoint('base:after-create-thin');
    const record: DeviceRecord = { device_id: deviceId, size: Number(this.options.baseSize), transaction_id: open, initialized: false };
    this.metadata.writeDevice(BASE_HASH, record);
    this.#devices.set(BASE_HASH, record);
    this.#commitTransaction(open, 'base:after-set-transaction-id');
    this.#saveDeviceSet();
    progress(2, `${path.basename(mkfs)} on ${humanSize(this.options.baseSize)}`);
    const device = await this.#activate(BASE_HASH);
    try {
      await makeFilesystem(mkfs, device, this.options.mkfsArgs);
      this.#crashPoint('base:after-mkfs');
      progress(3, 'create rootfs folder');
      const target = this.#mountPoint(BASE_HASH);
      fs.mkdirSync(target, { recursive: true, mode: 0o755 });
      mount(device, target, this.options.filesystem, { data: this.options.mountOptions || undefined });
      try {
        fs.mkdirSync(path.join(target, ROOTFS_FOLDER), { mode: 0o755 });
      } finally {
        umount(target);
      }
      this.#deviceSet.base_device_uuid = readExt4Uuid(device);
      this.#deviceSet.base_device_filesystem = this.options.filesystem;
      this.#saveDeviceSet();
      record.initialized = true;
      this.metadata.writeDevice(BASE_HASH, record);
    } finally {
      await this.#deactivate(BASE_HASH, { deferred: false });
    }
    this.backingFilesystem = this.options.filesystem;
    progress(BASE_SETUP_STEPS, 'base device ready');
  }

  /** Checks that the pool's base device is the one the metadata describes. */
  async #verifyBase(): Promise<void> {
    const device = await this.#activate(BASE_HASH);
    let uuid: string | undefined;
    try {
      uuid = readExt4Uuid(device);
    } finally {
      await this.#deactivate(BASE_HASH, { deferred: false });
    }
    const stored = this.#deviceSet.base_device_uuid;
    if (stored !== undefined && uuid !== stored) {
      throw Object.assign(
        driverError(
          GraphDriverErrorCode.BASE_DEVICE_MISMATCH,
          `Base device of pool ${this.poolName} has filesystem uuid ${uuid ?? '(none)'}, but the metadata in ${this.home} stores ${stored}; the pool belongs to another root, so check dm.thinpooldev`,
          { device: this.deviceName(BASE_HASH) },
        ),
        { stored, found: uuid },
      );
    }
    const existing = this.#deviceSet.base_device_filesystem ?? (uuid ? 'ext4' : '');
    if (existing && existing !== this.options.filesystem) {
      this.warnings.push(`dm.fs is ${this.options.filesystem} but the base device already has ${existing}; keeping ${existing}`);
    }
    this.backingFilesystem = existing || this.options.filesystem;
    if (stored === undefined && uuid !== undefined) {
      this.#deviceSet.base_device_uuid = uuid;
      this.#deviceSet.base_device_filesystem = this.backingFilesystem;
      this.#saveDeviceSet();
    }
  }

  /** Builds the key/value pairs `docker info` printed for devicemapper. */
  status(): StatusPair[] {
    const pool = readPoolStatus(this.dm, this.poolName);
    const blockBytes = this.options.blockSizeSectors * SECTOR_BYTES;
    const dataUsed = pool.usedDataBlocks * blockBytes;
    const dataTotal = pool.totalDataBlocks * blockBytes;
    let dataAvailable = dataTotal - dataUsed;
    const metadataUsed = pool.usedMetadataBlocks * METADATA_BLOCK_BYTES;
    const metadataTotal = pool.totalMetadataBlocks * METADATA_BLOCK_BYTES;
    let metadataAvailable = metadataTotal - metadataUsed;
    const pairs: StatusPair[] = [
      ['Pool Name', this.poolName],
      ['Pool Blocksize', humanSize(blockBytes)],
      ['Base Device Size', humanSize(this.#devices.get(BASE_HASH)?.size ?? this.options.baseSize)],
      ['Backing Filesystem', this.backingFilesystem],
    ];
    if (this.options.thinPoolDevice === undefined) {
      const files = loopPoolFiles(this.home);
      // Sparse files can only grow as far as the filesystem under them allows.
      const free = (file: string): bigint => {
        const stats = fs.statfsSync(path.dirname(file), { bigint: true });
        return stats.bavail * stats.bsize;
      };
      dataAvailable = minimum(dataAvailable, free(files.dataFile));
      metadataAvailable = minimum(metadataAvailable, free(files.metadataFile));
      pairs.push(['Data file', files.dataFile], ['Metadata file', files.metadataFile]);
    }
    pairs.push(
      ['Data Space Used', humanSize(dataUsed)],
      ['Data Space Total', humanSize(dataTotal)],
      ['Data Space Available', humanSize(dataAvailable)],
      ['Metadata Space Used', humanSize(metadataUsed)],
      ['Metadata Space Total', humanSize(metadataTotal)],
      ['Metadata Space Available', humanSize(metadataAvailable)],
      ['Thin Pool Minimum Free Space', humanSize(requiredBytes(dataTotal, this.options.minFreeSpacePercent))],
      ['Transaction Id', String(pool.transactionId)],
      ['Udev Sync Supported', String(this.config.udevSync ?? false)],
      ['Deferred Removal Enabled', String(this.options.deferredRemoval)],
      ['Deferred Deletion Enabled', String(this.options.deferredDeletion)],
      ['Deferred Deleted Device Count', String([...this.#devices.values()].filter((record) => record.deleted).length)],
      ['Library Version', `dm-ioctl, kernel interface ${this.dm.version().join('.')}`],
    );
    for (const warning of this.warnings) pairs.push(['Warning', warning]);
    return pairs;
  }

  /** Unmounts every layer, deactivates every device, removes the pool this set created, and unlocks. */
  async shutdown(): Promise<void> {
    if (!this.#dm) return;
    const errors: unknown[] = [];
    for (const hash of [...this.#mountCounts.keys()]) {
      try {
        umount(this.#mountPoint(hash), { lazy: true });
      } catch (error) {
        errors.push(error);
      }
    }
    this.#mountCounts.clear();
    await this.#deactivateStale().catch((error: unknown) => errors.push(error));
    if (this.options.thinPoolDevice === undefined && errors.length === 0) {
      // Removing the pool lets go of the loop devices, which autoclear then detaches.
      await this.dm.remove(this.poolName, { retry: true, ignoreMissing: true }).catch((error: unknown) => errors.push(error));
    }
    this.#release();
    if (errors.length > 0) throw errors[0];
  }
}

/** Steps of the base device set-up reported as progress. */
const BASE_SETUP_STEPS = 4;

function minimum(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function requiredBytes(total: bigint, percent: number): bigint {
  return (total * BigInt(percent)) / 100n;
}
