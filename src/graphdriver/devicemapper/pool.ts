// The thin pool under a device set: an existing pool (dm.thinpooldev), or
// the classic pair of sparse files on loop devices, and the checks of its
// status before a new device is made.

import fs from 'node:fs';
import path from 'node:path';
import { debuglog } from 'node:util';

import type { DeviceMapper } from '../../dm/client.js';
import { attachLoop, findLoopByBackingFile, type LoopDevice } from '../../loop/loop.js';
import { parseThinPoolStatus, type ThinPoolStatus } from '../../targets/thin-pool.js';
import { ensureSparseFile } from '../../thin/pool.js';
import { GraphDriverErrorCode, driverError } from '../errors.js';
import { DEFAULT_LOW_WATER_MARK, SECTOR_BYTES, type DeviceSetOptions } from './options.js';
import { thinPoolTable } from './tables.js';

const debug = debuglog('dm');

/** Thin pool metadata is counted in 4 KiB blocks (THIN_METADATA_BLOCK_SIZE). */
export const METADATA_BLOCK_BYTES = 4096n;

/** A healthy pool's status, or an error naming the pool. */
export type HealthyPoolStatus = Extract<ThinPoolStatus, { state: 'ok' }>;

/** Reads and parses the pool's status; a failed pool is an error. */
export function readPoolStatus(dm: DeviceMapper, poolName: string): HealthyPoolStatus {
  const [target] = dm.status(poolName);
  if (!target || target.type !== 'thin-pool') {
    throw driverError(GraphDriverErrorCode.NOT_SUPPORTED, `Device ${poolName} is not a thin pool (its table has ${target ? target.type : 'no target'}); name a thin-pool device in dm.thinpooldev`, {
      device: poolName,
    });
  }
  const status = parseThinPoolStatus(target.params);
  if (status.state !== 'ok') {
    throw driverError(GraphDriverErrorCode.POOL_OUT_OF_DATA_SPACE, `Thin pool ${poolName} reports status ${status.state}; check the kernel log and repair the pool with thin_check`, {
      device: poolName,
    });
  }
  return status;
}

/** The blocks that `percent` % of `total` come to, rounded up. */
export function requiredFreeBlocks(total: bigint, percent: number): bigint {
  return (total * BigInt(percent) + 99n) / 100n;
}

/**
 * Throws unless the pool can take a new device: never in out_of_data_space
 * mode or read-only, and with at least `minFreePercent` % of data and of
 * metadata blocks free (Docker's dm.min_free_space; 0 turns that check off).
 */
export function checkPoolSpace(status: HealthyPoolStatus, minFreePercent: number, poolName: string): void {
  if (status.mode === 'out_of_data_space') {
    throw driverError(GraphDriverErrorCode.POOL_OUT_OF_DATA_SPACE, `Thin pool ${poolName} is out of data space; grow the data device or remove layers`, {
      device: poolName,
    });
  }
  if (status.mode === 'ro') {
    throw driverError(GraphDriverErrorCode.POOL_OUT_OF_DATA_SPACE, `Thin pool ${poolName} is read-only (metadata full or damaged); check it with thin_check`, {
      device: poolName,
    });
  }
  if (minFreePercent === 0) return;
  const checks = [
    ['data', status.totalDataBlocks - status.usedDataBlocks, status.totalDataBlocks],
    ['metadata', status.totalMetadataBlocks - status.usedMetadataBlocks, status.totalMetadataBlocks],
  ] as const;
  for (const [kind, free, total] of checks) {
    const required = requiredFreeBlocks(total, minFreePercent);
    if (free < required) {
      throw Object.assign(
        driverError(
          GraphDriverErrorCode.POOL_LOW_ON_SPACE,
          `Thin pool ${poolName} has ${free} free ${kind} blocks, less than the ${required} (${minFreePercent}% of ${total}) dm.min_free_space requires; remove layers or grow the pool`,
          { device: poolName },
        ),
        { kind, free, required },
      );
    }
  }
}

export interface LoopPoolFiles {
  dataFile: string;
  metadataFile: string;
}

/** Where the loop files of a device set live: `<home>/devicemapper/{data,metadata}`. */
export function loopPoolFiles(home: string): LoopPoolFiles {
  const dir = path.join(home, 'devicemapper');
  return { dataFile: path.join(dir, 'data'), metadataFile: path.join(dir, 'metadata') };
}

/** The loop device `file` is attached to, or a new one; `attached` says this call attached it. */
function findOrAttach(file: string): { loop: LoopDevice; attached: boolean } {
  const found = findLoopByBackingFile(file);
  if (found) return { loop: found, attached: false };
  return { loop: attachLoop(file, { autoclear: true }), attached: true };
}

/**
 * Creates the pool over the loop files, making sparse files of the configured
 * sizes when they are missing. The loop devices are attached with autoclear
 * and the handles closed once the pool holds them, so removing the pool
 * detaches them.
 */
export async function createLoopPool(dm: DeviceMapper, poolName: string, home: string, options: DeviceSetOptions): Promise<void> {
  const files = loopPoolFiles(home);
  fs.mkdirSync(path.dirname(files.dataFile), { recursive: true, mode: 0o700 });
  const created: string[] = [];
  const loops: { loop: LoopDevice; attached: boolean }[] = [];
  let live = false;
  try {
    if (ensureSparseFile(files.dataFile, options.loopDataSize)) created.push(files.dataFile);
    if (ensureSparseFile(files.metadataFile, options.loopMetadataSize)) created.push(files.metadataFile);
    loops.push(findOrAttach(files.dataFile));
    loops.push(findOrAttach(files.metadataFile));
    const [dataLoop, metadataLoop] = loops.map((entry) => entry.loop);
    // The pool's length is whole data blocks: a partial last block stays unused.
    const length = (dataLoop.sizeSectors() / options.blockSizeSectors) * options.blockSizeSectors;
    if (length === 0n) {
      throw driverError(GraphDriverErrorCode.INVALID_OPTION, `Data file ${files.dataFile} is smaller than one ${options.blockSizeSectors * SECTOR_BYTES}-byte block; raise dm.loopdatasize`);
    }
    const table = [thinPoolTable(length, metadataLoop.devString, dataLoop.devString, options.blockSizeSectors, DEFAULT_LOW_WATER_MARK)];
    await dm.createDevice(poolName, { table });
    live = true;
    debug('devicemapper: created pool %s over %s and %s', poolName, dataLoop.path, metadataLoop.path);
  } finally {
    for (const { loop, attached } of loops) {
      if (live || !attached) loop.close();
      else {
        try {
          loop.detach();
        } catch (error) {
          debug('devicemapper: detaching %s: %s', loop.path, (error as Error).message);
        }
      }
    }
    if (!live) for (const file of created) fs.rmSync(file, { force: true });
  }
}
