// Choosing the device a command acts on the dmsetup way: a name argument,
// else `-u UUID`, else `-j MAJOR -m MINOR`; and facts about block devices
// that dmsetup reads from sysfs and /dev.

import fs from 'node:fs';

import { decodeDev, type DeviceId, type DeviceMapper } from '../index.js';
import { CommandFailure, hasSwitch, optionValue, type CommandContext } from './command.js';
import { ioctlFailureLine, type DeviceLabel } from './errors.js';

/** A chosen device: how to address it in the library and how to name it in error lines. */
export interface SelectedDevice {
  id: DeviceId;
  label: DeviceLabel;
}

/** True when `-u` or `-j`/`-m` chose the device instead of a name argument. */
export function selectsByOption(context: CommandContext): boolean {
  return hasSwitch(context.parsed, 'uuid') || hasSwitch(context.parsed, 'major');
}

/** How libdm names the device of `name` or of `-u`/`-j -m` in an error line. */
export function labelFor(context: CommandContext, name: string | undefined): DeviceLabel {
  if (name !== undefined) return { name };
  const uuid = optionValue(context.parsed, 'uuid');
  if (uuid !== undefined) return { name: '', uuid };
  if (hasSwitch(context.parsed, 'major')) {
    return { name: '', major: atoi(optionValue(context.parsed, 'major')), minor: atoi(optionValue(context.parsed, 'minor')) };
  }
  return { name: '' };
}

/** Parses `-j`/`-m` as C's atoi() does: leading digits, 0 for none. */
function atoi(text: string | undefined): number {
  const match = /^\s*([+-]?\d+)/.exec(text ?? '');
  return match ? Number(match[1]) : 0;
}

/**
 * The device for `name`, or the one `-u`/`-j -m` chose. Fails with
 * "No device specified." when there is none. `operation` is the libdm
 * operation named when `-j -m` matches no device.
 */
export function selectDevice(context: CommandContext, name: string | undefined, operation: string): SelectedDevice {
  if (name !== undefined) return { id: name, label: { name } };
  const uuid = optionValue(context.parsed, 'uuid');
  if (uuid !== undefined) return { id: { uuid }, label: { name: '', uuid } };
  if (hasSwitch(context.parsed, 'major') && hasSwitch(context.parsed, 'minor')) {
    const major = atoi(optionValue(context.parsed, 'major'));
    const minor = atoi(optionValue(context.parsed, 'minor'));
    const label = { name: '', major, minor };
    const found = findByDevNumber(context.dm(), major, minor);
    // TODO: address the kernel by dev number (name and uuid empty) once the
    // client can; until then the name comes from the device list.
    if (found === undefined) throw new DeviceNumberNotFound(operation, label);
    return { id: found, label };
  }
  throw new CommandFailure('No device specified.');
}

/** `-j -m` named no device: libdm reports the kernel's ENXIO for it. */
export class DeviceNumberNotFound extends CommandFailure {
  constructor(operation: string, label: DeviceLabel) {
    super(ioctlFailureLine(operation, label, 'ENXIO', 'No such device or address'));
  }
}

/** The name of the mapped device with this number, from the kernel's device list. */
export function findByDevNumber(dm: DeviceMapper, major: number, minor: number): string | undefined {
  for (const entry of dm.listDevices()) {
    const dev = decodeDev(entry.dev);
    if (dev.major === major && dev.minor === minor) return entry.name;
  }
  return undefined;
}

/** The kernel's name for a block device (`dm-0`, `loop1`), from /sys/dev/block. */
export function blockDeviceName(major: number, minor: number): string | undefined {
  try {
    const target = fs.readlinkSync(`/sys/dev/block/${major}:${minor}`);
    return target.slice(target.lastIndexOf('/') + 1);
  } catch {
    return undefined;
  }
}

/** The dm name of a mapped device from sysfs, else its kernel name (libdm's dm_device_get_name). */
export function mappedDeviceName(major: number, minor: number): string | undefined {
  try {
    return fs.readFileSync(`/sys/dev/block/${major}:${minor}/dm/name`, 'utf8').trim();
  } catch {
    return blockDeviceName(major, minor);
  }
}

/** Read-ahead of a block device in 512-byte sectors, from sysfs (KiB there). */
export function readAheadSectors(major: number, minor: number): number {
  for (const file of ['bdi/read_ahead_kb', 'queue/read_ahead_kb']) {
    try {
      return Number(fs.readFileSync(`/sys/dev/block/${major}:${minor}/${file}`, 'utf8').trim()) * 2;
    } catch {
      // Try the next place.
    }
  }
  return 0;
}
