// The overlay driver: each layer keeps only its own changes in `diff/`; a
// layer with ancestors is mounted as overlayfs with their `diff/` folders
// as lower layers. Registered, but not in the default priority.

import fs from 'node:fs';
import path from 'node:path';
import { debuglog } from 'node:util';

import { mount, umount } from '../ioctl/mount.js';
import type { DriverConfig, ProtoDriver, StatusPair } from './driver.js';
import { GraphDriverErrorCode, driverError, isErrno } from './errors.js';
import { checkLayerId } from './ids.js';
import { kernelHasFilesystem, mountPointsUnder, PROC_FILESYSTEMS } from './mounts.js';
import { NaiveDiffDriver } from './naive.js';
import { MountCounter } from './refcount.js';

const debug = debuglog('dm');

export const OVERLAY_DRIVER_NAME = 'overlay';
/** Mount data longer than a page (PAGE_SIZE on x86-64) is cut by the kernel. */
export const MOUNT_DATA_MAX = 4095;
const HOME_MODE = 0o700;
const LAYER_DIRECTORY_MODE = 0o755;

/** The mount data of a layer: lower folders nearest first, then upper and work. */
export function overlayMountData(lowerDirs: readonly string[], upperDir: string, workDir: string): string {
  return `lowerdir=${lowerDirs.join(':')},upperdir=${upperDir},workdir=${workDir}`;
}

export class OverlayDriver implements ProtoDriver {
  readonly name = OVERLAY_DRIVER_NAME;
  readonly #mounts = new MountCounter();

  private constructor(readonly home: string) {}

  static async init(root: string, config: DriverConfig = {}): Promise<NaiveDiffDriver> {
    const proc = config.procFilesystems ?? PROC_FILESYSTEMS;
    if (!kernelHasFilesystem('overlay', proc)) {
      throw driverError(GraphDriverErrorCode.NOT_SUPPORTED, `The overlay driver is not supported here: ${proc} does not list overlay; load the overlay module (modprobe overlay)`);
    }
    for (const option of config.options ?? []) {
      throw driverError(GraphDriverErrorCode.INVALID_OPTION, `Unknown option ${JSON.stringify(option)} for the overlay driver: it takes none`);
    }
    const home = path.join(root, OVERLAY_DRIVER_NAME);
    fs.mkdirSync(home, { recursive: true, mode: HOME_MODE });
    const driver = new OverlayDriver(home);
    driver.#adoptMounts();
    return new NaiveDiffDriver(driver);
  }

  /** Takes over layers an earlier process left mounted, with one reference each; unmounts other mounts. */
  #adoptMounts(): void {
    for (const point of mountPointsUnder(this.home)) {
      const relative = path.relative(this.home, point).split(path.sep);
      const id = relative[0];
      if (relative.length === 2 && relative[1] === 'merged' && !id.startsWith('.') && fs.existsSync(this.#layer(id, 'diff'))) {
        this.#mounts.acquire(id);
      } else {
        debug('overlay: unmounting stale %s', point);
        umount(point, { lazy: true });
      }
    }
  }

  #layer(id: string, ...parts: string[]): string {
    return path.join(this.home, id, ...parts);
  }

  /** Ancestors of `id`, nearest first. */
  #lowerIds(id: string): string[] {
    try {
      return fs.readFileSync(this.#layer(id, 'lower'), 'utf8').split('\n').filter((line) => line.length > 0);
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return [];
      throw error;
    }
  }

  async create(id: string, parent?: string): Promise<void> {
    checkLayerId(id);
    if (parent !== undefined) checkLayerId(parent, 'parent id');
    if (this.exists(id)) throw driverError(GraphDriverErrorCode.LAYER_EXISTS, `Layer ${id} already exists in ${this.home}; remove it first or pick another id`);
    if (parent !== undefined && !this.exists(parent)) {
      throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Parent layer ${parent} of ${id} does not exist in ${this.home}`);
    }
    const staging = path.join(this.home, `.staging-${id}`);
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { mode: LAYER_DIRECTORY_MODE });
    try {
      for (const folder of ['diff', 'work', 'merged']) fs.mkdirSync(path.join(staging, folder), { mode: LAYER_DIRECTORY_MODE });
      if (parent !== undefined) {
        const lower = [parent, ...this.#lowerIds(parent)];
        fs.writeFileSync(path.join(staging, 'lower'), `${lower.join('\n')}\n`, { mode: 0o600 });
        // The new layer's root starts with the parent's owner and mode.
        const parentRoot = fs.statSync(this.#layer(parent, 'diff'));
        fs.chownSync(path.join(staging, 'diff'), parentRoot.uid, parentRoot.gid);
        fs.chmodSync(path.join(staging, 'diff'), parentRoot.mode & 0o7777);
      }
      fs.renameSync(staging, this.#layer(id));
    } catch (error) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw error;
    }
  }

  async remove(id: string): Promise<void> {
    checkLayerId(id);
    this.#mounts.checkUnused(id, this.name);
    if (!this.exists(id)) throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Layer ${id} does not exist in ${this.home}`);
    const doomed = path.join(this.home, `.removing-${id}`);
    fs.renameSync(this.#layer(id), doomed);
    await fs.promises.rm(doomed, { recursive: true, force: true });
  }

  async get(id: string): Promise<string> {
    checkLayerId(id);
    if (!this.exists(id)) throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Layer ${id} does not exist in ${this.home}`);
    const lower = this.#lowerIds(id);
    if (lower.length === 0) {
      this.#mounts.acquire(id);
      return this.#layer(id, 'diff');
    }
    const merged = this.#layer(id, 'merged');
    if (!this.#mounts.acquire(id)) return merged;
    const data = overlayMountData(
      lower.map((lowerId) => this.#layer(lowerId, 'diff')),
      this.#layer(id, 'diff'),
      this.#layer(id, 'work'),
    );
    try {
      if (data.length > MOUNT_DATA_MAX) {
        // TODO: short symlinked lower names (as overlay2 does) would allow deeper chains.
        throw driverError(GraphDriverErrorCode.NOT_SUPPORTED, `Layer ${id} has ${lower.length} ancestors, too many for one overlay mount (${data.length} bytes of mount data, the maximum is ${MOUNT_DATA_MAX})`);
      }
      mount('overlay', merged, 'overlay', { data });
    } catch (error) {
      this.#mounts.undo(id);
      throw error;
    }
    return merged;
  }

  async put(id: string): Promise<void> {
    checkLayerId(id);
    if (!this.#mounts.release(id, this.name)) return;
    if (this.#lowerIds(id).length > 0) umount(this.#layer(id, 'merged'));
  }

  exists(id: string): boolean {
    checkLayerId(id);
    return fs.existsSync(this.#layer(id, 'diff'));
  }

  list(): string[] {
    return fs.readdirSync(this.home).filter((name) => !name.startsWith('.')).sort();
  }

  parent(id: string): string | undefined {
    checkLayerId(id);
    return this.#lowerIds(id)[0];
  }

  status(): StatusPair[] {
    return [
      ['Backing Filesystem', 'overlay'],
      ['Root Dir', this.home],
    ];
  }

  async cleanup(): Promise<void> {
    for (const id of this.#mounts.ids()) {
      if (this.#lowerIds(id).length > 0) umount(this.#layer(id, 'merged'), { lazy: true });
    }
    this.#mounts.clear();
  }
}
