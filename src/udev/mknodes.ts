// `dmsetup mknodes`: brings /dev/mapper in line with the kernel's device
// list, for a system where nodes went missing or stale (a container that
// started after the devices, a udev that was down).

import fs from 'node:fs';

import { decodeDev, type DevNumber } from '../ioctl/codec.js';
import type { DeviceMapper } from '../dm/client.js';
import type { DirectNodes, NodeChange } from './nodes.js';

/** The control node in /dev/mapper, which no device is named after (the kernel forbids the name). */
const CONTROL_NODE_NAME = 'control';

/** A device as the kernel names it (the mangled form, which is also the node's name). */
export interface KernelDevice {
  name: string;
  dev: DevNumber;
}

/**
 * Lists the kernel's devices under their kernel names. `dm` must send and
 * return names unmangled (`nameMangling: 'none'`), so the names it returns
 * are the node names.
 */
export function kernelDevices(dm: DeviceMapper): KernelDevice[] {
  return dm.listDevices().map((entry) => ({ name: entry.name, dev: decodeDev(entry.dev) }));
}

/**
 * Removes the entries of the node folder that name no device (the control
 * node and folders excepted) and makes each device's node right, as libdm's
 * _mknodes_v4 does. Returns the changes.
 */
export function reconcileNodes(nodes: DirectNodes, devices: readonly KernelDevice[]): NodeChange[] {
  const changes: NodeChange[] = [];
  const wanted = new Set(devices.map((device) => device.name));
  for (const entry of readEntries(nodes.dir)) {
    if (entry.name === CONTROL_NODE_NAME || entry.isDirectory() || wanted.has(entry.name)) continue;
    if (nodes.removeNode(entry.name)) changes.push({ action: 'removed', path: nodes.nodePath(entry.name) });
  }
  for (const device of devices) changes.push(...reconcileNode(nodes, device.name, device));
  return changes;
}

/** Makes the node of `name` match `device`, or removes it when the kernel has no such device. */
export function reconcileNode(nodes: DirectNodes, name: string, device: KernelDevice | undefined): NodeChange[] {
  if (device === undefined) {
    return nodes.removeNode(name) ? [{ action: 'removed', path: nodes.nodePath(name) }] : [];
  }
  const result = nodes.ensureNode(device.name, device.dev);
  return result === 'kept' ? [] : [{ action: result, path: nodes.nodePath(device.name) }];
}

function readEntries(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
