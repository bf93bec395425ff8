// Public entry point: the device-mapper client wired to direct /dev/mapper
// node management, plus the loop, target and thin-pool layers.

import { DeviceMapper, type DeviceMapperOptions } from './dm/client.js';
import { DirectNodes } from './udev/nodes.js';

export * from './ioctl/constants.js';
export * from './ioctl/codec.js';
export * from './ioctl/errors.js';
export { mount, umount, type MountOptions } from './ioctl/mount.js';
export * from './dm/client.js';
export * from './dm/names.js';
export * from './dm/types.js';
export { DirectNodes, type DirectNodesOptions } from './udev/nodes.js';
export * from './loop/loop.js';
export * from './targets/table.js';
export * from './targets/linear.js';
export * from './targets/thin-pool.js';
export * from './targets/thin.js';
export * from './thin/pool.js';

/**
 * Opens /dev/mapper/control with /dev/mapper/<name> nodes made and removed by
 * the library itself. Pass `nodeSync` to replace that behaviour.
 */
export function openDeviceMapper(options: DeviceMapperOptions = {}): DeviceMapper {
  return DeviceMapper.open({ nodeSync: new DirectNodes({ libc: options.libc }), ...options });
}
