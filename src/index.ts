// Public entry point: the device-mapper client wired to /dev/mapper node
// management (udev cookies when udev runs, the library's own nodes
// otherwise), plus the loop, target and thin-pool layers.

import { DeviceMapper, type DeviceMapperOptions } from './dm/client.js';
import { createNodeSync, type UdevSyncOptions } from './udev/detect.js';

export * from './ioctl/constants.js';
export * from './ioctl/codec.js';
export * from './ioctl/errors.js';
export { mount, umount, type MountOptions } from './ioctl/mount.js';
export * from './dm/client.js';
export * from './dm/names.js';
export * from './dm/mangle.js';
export * from './dm/types.js';
export { DirectNodes, DIRECT_UDEV_FLAGS, DM_NODE_MODE, type DirectNodesOptions, type NodeChange } from './udev/nodes.js';
export * from './udev/cookie.js';
export * from './udev/detect.js';
export * from './udev/logger.js';
export * from './udev/mknodes.js';
export { COOKIE_UDEV_FLAGS, DEFAULT_UDEV_WAIT_TIMEOUT_MS, UdevCookieSync, type UdevCookieSyncOptions, type UdevWaitOptions } from './udev/sync.js';
export { type WaitResult } from './udev/wait.js';
export * from './loop/loop.js';
export * from './targets/table.js';
export * from './targets/linear.js';
export * from './targets/thin-pool.js';
export * from './targets/thin.js';
export * from './thin/pool.js';
export * from './targets/striped.js';
export * from './targets/zero.js';
export * from './targets/snapshot.js';
export * from './targets/crypt.js';
export * from './targets/verity.js';
export * from './targets/flakey.js';
export * from './targets/delay.js';
export * from './targets/cache.js';
export * from './targets/writecache.js';
export * from './targets/mirror.js';
export * from './targets/registry.js';
export { ArgReader } from './targets/args.js';
export * from './thin/errors.js';
export * from './thin/monitor.js';

export interface OpenDeviceMapperOptions extends DeviceMapperOptions, UdevSyncOptions {}

/**
 * Opens /dev/mapper/control with /dev/mapper/<name> kept in step: through
 * udev cookies when udev runs (as libdm decides it), by the library itself
 * otherwise; `udev` forces either. Pass `nodeSync` to replace both.
 */
export function openDeviceMapper(options: OpenDeviceMapperOptions = {}): DeviceMapper {
  return DeviceMapper.open({ ...options, nodeSync: options.nodeSync ?? createNodeSync(options) });
}
export * from './graphdriver/index.js';
