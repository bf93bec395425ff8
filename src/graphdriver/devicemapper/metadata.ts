// The devicemapper driver's metadata on disk: one JSON file per device, the
// open transaction and the device set's own record, each written atomically
// (temporary file, fsync, rename, fsync of the folder).

import fs from 'node:fs';
import path from 'node:path';

import { GraphDriverErrorCode, driverError, isErrno } from '../errors.js';

/** One thin device, under the field names Docker's deviceset used. */
export interface DeviceRecord {
  device_id: number;
  /** Size of the thin device in bytes. */
  size: number;
  /** The pool transaction id that committed this device. */
  transaction_id: number;
  initialized: boolean;
  /** Marked for deletion that the kernel refused (EBUSY) and that is retried later. */
  deleted?: boolean;
  /** The layer this one is a snapshot of; absent for the base and for layers of the base. */
  parent?: string;
}

/**
 * The transaction in progress: the pool's transaction id becomes
 * `open_transaction_id` when it commits. `device_hash` is the layer id (""
 * for the base device), `device_id` the thin id it touches.
 */
export interface TransactionRecord {
  open_transaction_id: number;
  device_hash: string;
  device_id: number;
}

export interface DeviceSetRecord {
  next_device_id: number;
  base_device_uuid?: string;
  base_device_filesystem?: string;
}

/** The id the base device's files are stored under. */
export const BASE_HASH = '';

/** Writes `data` as JSON to `file` atomically: a crash leaves the old or the new file, never a part. */
export function writeJsonAtomic(file: string, data: unknown): void {
  const temporary = `${file}.tmp`;
  const fd = fs.openSync(temporary, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify(data));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
  const dirFd = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}

/** Reads a JSON file, or returns undefined when it does not exist. */
export function readJson<T>(file: string): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw driverError(GraphDriverErrorCode.CORRUPT_METADATA, `Metadata file ${file} is not valid JSON; restore it from a backup or remove the driver folder`, {
      path: file,
      cause: error,
    });
  }
}

/** The metadata folder of one device set. */
export class MetadataStore {
  constructor(readonly dir: string) {}

  get layersDir(): string {
    return path.join(this.dir, 'layers');
  }

  ensure(): void {
    fs.mkdirSync(this.layersDir, { recursive: true, mode: 0o700 });
    // A `.tmp` file is a write a crash interrupted before its rename: the old file stands.
    for (const folder of [this.dir, this.layersDir]) {
      for (const name of fs.readdirSync(folder)) if (name.endsWith('.tmp')) fs.rmSync(path.join(folder, name), { force: true });
    }
  }

  #deviceFile(hash: string): string {
    return hash === BASE_HASH ? path.join(this.dir, 'base') : path.join(this.layersDir, hash);
  }

  readDevice(hash: string): DeviceRecord | undefined {
    return readJson<DeviceRecord>(this.#deviceFile(hash));
  }

  writeDevice(hash: string, record: DeviceRecord): void {
    writeJsonAtomic(this.#deviceFile(hash), record);
  }

  removeDevice(hash: string): void {
    fs.rmSync(this.#deviceFile(hash), { force: true });
  }

  /** Every stored device by hash, the base under "". */
  readAll(): Map<string, DeviceRecord> {
    const devices = new Map<string, DeviceRecord>();
    const base = this.readDevice(BASE_HASH);
    if (base) devices.set(BASE_HASH, base);
    for (const name of fs.readdirSync(this.layersDir)) {
      if (name.endsWith('.tmp')) continue;
      const record = this.readDevice(name);
      if (record) devices.set(name, record);
    }
    return devices;
  }

  readTransaction(): TransactionRecord | undefined {
    return readJson<TransactionRecord>(path.join(this.dir, 'transaction-metadata'));
  }

  writeTransaction(record: TransactionRecord): void {
    writeJsonAtomic(path.join(this.dir, 'transaction-metadata'), record);
  }

  readDeviceSet(): DeviceSetRecord | undefined {
    return readJson<DeviceSetRecord>(path.join(this.dir, 'deviceset-metadata'));
  }

  writeDeviceSet(record: DeviceSetRecord): void {
    writeJsonAtomic(path.join(this.dir, 'deviceset-metadata'), record);
  }
}

/** What start-up must do so the stored devices agree with the pool. */
export interface RecoveryPlan {
  /** The open transaction to roll back: delete its thin id, drop its record if it matches. */
  rollback?: { hash: string; deviceId: number; dropRecord: boolean };
  /** Devices committed by a transaction the pool never reached. */
  lost: { hash: string; deviceId: number }[];
}

/**
 * Compares the pool's transaction id with the stored records. An open
 * transaction the pool has not reached is rolled back; devices stored with a
 * transaction id above the pool's are lost. A pool id above the open
 * transaction cannot come from this driver and is an error.
 */
export function planRecovery(
  poolTransactionId: number,
  transaction: TransactionRecord | undefined,
  devices: ReadonlyMap<string, DeviceRecord>,
): RecoveryPlan {
  const plan: RecoveryPlan = { lost: [] };
  if (transaction && transaction.open_transaction_id !== poolTransactionId) {
    if (poolTransactionId > transaction.open_transaction_id) {
      throw driverError(
        GraphDriverErrorCode.TRANSACTION_ID_MISMATCH,
        `Thin pool transaction id ${poolTransactionId} is ahead of the stored open transaction ${transaction.open_transaction_id}; another program changed the pool, so check it before using this root`,
      );
    }
    const record = devices.get(transaction.device_hash);
    plan.rollback = {
      hash: transaction.device_hash,
      deviceId: transaction.device_id,
      dropRecord: record !== undefined && record.device_id === transaction.device_id,
    };
  }
  for (const [hash, record] of devices) {
    if (plan.rollback?.dropRecord && hash === plan.rollback.hash) continue;
    if (record.transaction_id > poolTransactionId) plan.lost.push({ hash, deviceId: record.device_id });
  }
  return plan;
}
