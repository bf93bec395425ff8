// The devicemapper graphdriver: each layer a thin snapshot of its parent in
// one pool, mounted through mount(2), with the naive diff on top.

import { DeviceMapper } from '../../dm/client.js';
import { DmError, DmErrorCode } from '../../ioctl/errors.js';
import { createNodeSync } from '../../udev/detect.js';
import { UdevCookieSync } from '../../udev/sync.js';
import type { DriverConfig, ProtoDriver, StatusPair } from '../driver.js';
import { GraphDriverErrorCode, driverError } from '../errors.js';
import { checkLayerId } from '../ids.js';
import { NaiveDiffDriver } from '../naive.js';
import { DeviceSet, RESERVED_IDS } from './deviceset.js';
import { parseDeviceSetOptions } from './options.js';

export const DEVICEMAPPER_DRIVER_NAME = 'devicemapper';

/** Control-node failures that mean this host has no device-mapper at all. */
const NO_DEVICE_MAPPER_CODES: readonly string[] = [DmErrorCode.DRIVER_UNAVAILABLE, 'ENODEV', 'ENXIO', 'ENOTTY'];

/**
 * Opens /dev/mapper/control with the same udev choice as the library's
 * openDeviceMapper(): cookies when udev runs, nodes made directly otherwise.
 * A host without device-mapper is "not supported".
 */
function openDeviceMapper(): { dm: DeviceMapper; udevSync: boolean } {
  try {
    const nodeSync = createNodeSync();
    return { dm: DeviceMapper.open({ nodeSync }), udevSync: nodeSync instanceof UdevCookieSync };
  } catch (error) {
    if (error instanceof DmError && NO_DEVICE_MAPPER_CODES.includes(error.code)) {
      throw driverError(GraphDriverErrorCode.NOT_SUPPORTED, `The devicemapper driver is not supported here: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

export class DevmapperDriver implements ProtoDriver {
  readonly name = DEVICEMAPPER_DRIVER_NAME;

  private constructor(readonly deviceSet: DeviceSet) {}

  static async init(root: string, config: DriverConfig = {}): Promise<NaiveDiffDriver> {
    const options = parseDeviceSetOptions(config.options);
    const { dm, udevSync } = openDeviceMapper();
    try {
      const deviceSet = await DeviceSet.open(root, { options, onProgress: config.onProgress, crashAt: config.crashAt, udevSync }, dm);
      return new NaiveDiffDriver(new DevmapperDriver(deviceSet));
    } catch (error) {
      dm.close();
      throw error;
    }
  }

  #check(id: string, what = 'layer id'): void {
    checkLayerId(id, what);
    if (RESERVED_IDS.includes(id)) {
      throw driverError(GraphDriverErrorCode.INVALID_ID, `Invalid ${what} ${JSON.stringify(id)}: the devicemapper driver reserves ${RESERVED_IDS.join(' and ')} for its own devices`);
    }
  }

  async create(id: string, parent?: string): Promise<void> {
    this.#check(id);
    if (parent !== undefined) this.#check(parent, 'parent id');
    await this.deviceSet.createDevice(id, parent);
  }

  async remove(id: string): Promise<void> {
    this.#check(id);
    await this.deviceSet.deleteDevice(id);
  }

  get(id: string): Promise<string> {
    this.#check(id);
    return this.deviceSet.mountDevice(id);
  }

  put(id: string): Promise<void> {
    this.#check(id);
    return this.deviceSet.unmountDevice(id);
  }

  exists(id: string): boolean {
    this.#check(id);
    return this.deviceSet.hasDevice(id);
  }

  list(): string[] {
    return this.deviceSet.layerIds();
  }

  parent(id: string): string | undefined {
    this.#check(id);
    return this.deviceSet.device(id)?.parent;
  }

  status(): StatusPair[] {
    return this.deviceSet.status();
  }

  async cleanup(): Promise<void> {
    if (this.deviceSet.closed) return;
    const dm = this.deviceSet.dm;
    try {
      await this.deviceSet.shutdown();
    } finally {
      dm.close();
    }
  }
}
