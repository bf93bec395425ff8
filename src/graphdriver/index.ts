// The default driver registry (aufs, devicemapper, vfs by priority; overlay
// registered but only chosen by name) and the graphdriver exports.

import { AufsDriver, AUFS_DRIVER_NAME } from './aufs.js';
import { DevmapperDriver, DEVICEMAPPER_DRIVER_NAME } from './devicemapper/driver.js';
import type { Driver, InitFunction } from './driver.js';
import { OverlayDriver, OVERLAY_DRIVER_NAME } from './overlay.js';
import { DriverRegistry, type NewDriverOptions } from './registry.js';
import { VfsDriver, VFS_DRIVER_NAME } from './vfs.js';

export * from './driver.js';
export * from './errors.js';
export * from './ids.js';
export * from './registry.js';
export * from './naive.js';
export * from './units.js';
export { VfsDriver, VFS_DRIVER_NAME } from './vfs.js';
export { OverlayDriver, OVERLAY_DRIVER_NAME, overlayMountData } from './overlay.js';
export { AufsDriver, AUFS_DRIVER_NAME, aufsMountData } from './aufs.js';
export { DevmapperDriver, DEVICEMAPPER_DRIVER_NAME } from './devicemapper/driver.js';
export { DeviceSet, CRASH_STEPS, CRASH_AT_ENV, type CrashStep, type LostDevice } from './devicemapper/deviceset.js';
export { parseDeviceSetOptions, type DeviceSetOptions } from './devicemapper/options.js';
export { checkPoolSpace, requiredFreeBlocks } from './devicemapper/pool.js';
export { planRecovery, type DeviceRecord, type TransactionRecord, type RecoveryPlan } from './devicemapper/metadata.js';
export { readTar, writeTar, type TarEntry, type TarEntryInput, type TarSource } from './tar/stream.js';
export type { TarHeader, EntryType } from './tar/header.js';
export { applyLayer } from './archive/apply.js';
export { changesDirs, changesSize } from './archive/changes.js';
export { exportChanges } from './archive/export.js';
export { copyTree } from './archive/copy.js';

/** Registers the four drivers of this library in `registry`. */
export function registerBuiltinDrivers(registry: DriverRegistry): DriverRegistry {
  registry.register(AUFS_DRIVER_NAME, AufsDriver.init);
  registry.register(DEVICEMAPPER_DRIVER_NAME, DevmapperDriver.init);
  registry.register(VFS_DRIVER_NAME, VfsDriver.init);
  registry.register(OVERLAY_DRIVER_NAME, OverlayDriver.init);
  return registry;
}

/** The process-wide registry `register` and `newDriver` use. */
export const defaultRegistry = registerBuiltinDrivers(new DriverRegistry());

/** Registers a driver in the default registry. */
export function register(name: string, init: InitFunction): void {
  defaultRegistry.register(name, init);
}

/** Picks and initializes a driver from the default registry (see DriverRegistry.newDriver). */
export function newDriver(root: string, options: NewDriverOptions = {}): Promise<Driver> {
  return defaultRegistry.newDriver(root, options);
}
