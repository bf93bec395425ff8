// The aufs driver: each layer's changes in `diff/<id>`, its ancestors listed
// in `layers/<id>` nearest first, and the layer mounted on `mnt/<id>` as an
// aufs union of its branch (read-write) over its ancestors' (read-only,
// whiteouts honoured). aufs whiteouts are the `.wh.` files layer tars carry.

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

export const AUFS_DRIVER_NAME = 'aufs';
/** Mount data longer than a page is cut by the kernel. */
export const AUFS_MOUNT_DATA_MAX = 4095;
const HOME_MODE = 0o700;
const LAYER_DIRECTORY_MODE = 0o755;

/** aufs mount data: the layer's branch read-write, then its ancestors read-only with whiteouts. */
export function aufsMountData(rwBranch: string, roBranches: readonly string[]): string {
  const branches = [`${rwBranch}=rw`, ...roBranches.map((branch) => `${branch}=ro+wh`)];
  return `br:${branches.join(':')},dio`;
}

export class AufsDriver implements ProtoDriver {
  readonly name = AUFS_DRIVER_NAME;
  readonly #mounts = new MountCounter();

  private constructor(readonly home: string) {}

  static async init(root: string, config: DriverConfig = {}): Promise<NaiveDiffDriver> {
    const proc = config.procFilesystems ?? PROC_FILESYSTEMS;
    if (!kernelHasFilesystem('aufs', proc)) {
      throw driverError(GraphDriverErrorCode.NOT_SUPPORTED, `The aufs driver is not supported here: ${proc} does not list aufs`);
    }
    for (const option of config.options ?? []) {
      throw driverError(GraphDriverErrorCode.INVALID_OPTION, `Unknown option ${JSON.stringify(option)} for the aufs driver: it takes none`);
    }
    const home = path.join(root, AUFS_DRIVER_NAME);
    for (const folder of ['diff', 'layers', 'mnt']) fs.mkdirSync(path.join(home, folder), { recursive: true, mode: HOME_MODE });
    const driver = new AufsDriver(home);
    driver.#adoptMounts();
    return new NaiveDiffDriver(driver);
  }

  /** Takes over layers an earlier process left mounted, with one reference each; unmounts other mounts. */
  #adoptMounts(): void {
    const mntDir = path.join(this.home, 'mnt');
    for (const point of mountPointsUnder(mntDir)) {
      const id = path.relative(mntDir, point);
      if (path.dirname(point) === mntDir && fs.existsSync(this.#path('diff', id))) this.#mounts.acquire(id);
      else {
        debug('aufs: unmounting stale %s', point);
        umount(point, { lazy: true });
      }
    }
  }

  #path(folder: 'diff' | 'layers' | 'mnt', id: string): string {
    return path.join(this.home, folder, id);
  }

  /** Ancestors of `id`, nearest first, from `layers/<id>`. */
  ancestors(id: string): string[] {
    checkLayerId(id);
    try {
      return fs.readFileSync(this.#path('layers', id), 'utf8').split('\n').filter((line) => line.length > 0);
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
    const lower = parent === undefined ? [] : [parent, ...this.ancestors(parent)];
    fs.mkdirSync(this.#path('mnt', id), { recursive: true, mode: LAYER_DIRECTORY_MODE });
    fs.writeFileSync(this.#path('layers', id), lower.map((line) => `${line}\n`).join(''), { mode: 0o600 });
    // The diff folder last: exists() looks at it, so a crash before here leaves no layer.
    fs.mkdirSync(this.#path('diff', id), { mode: LAYER_DIRECTORY_MODE });
  }

  async remove(id: string): Promise<void> {
    checkLayerId(id);
    this.#mounts.checkUnused(id, this.name);
    if (!this.exists(id)) throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Layer ${id} does not exist in ${this.home}`);
    const doomed = path.join(this.home, 'diff', `.removing-${id}`);
    fs.renameSync(this.#path('diff', id), doomed);
    fs.rmSync(this.#path('layers', id), { force: true });
    fs.rmSync(this.#path('mnt', id), { recursive: true, force: true });
    await fs.promises.rm(doomed, { recursive: true, force: true });
  }

  async get(id: string): Promise<string> {
    checkLayerId(id);
    if (!this.exists(id)) throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Layer ${id} does not exist in ${this.home}`);
    const target = this.#path('mnt', id);
    if (!this.#mounts.acquire(id)) return target;
    const data = aufsMountData(this.#path('diff', id), this.ancestors(id).map((ancestor) => this.#path('diff', ancestor)));
    try {
      if (data.length > AUFS_MOUNT_DATA_MAX) {
        // TODO: add the remaining branches with remount "append:" options, as Docker did.
        throw driverError(GraphDriverErrorCode.NOT_SUPPORTED, `Layer ${id} has too many ancestors for one aufs mount (${data.length} bytes of mount data, the maximum is ${AUFS_MOUNT_DATA_MAX})`);
      }
      mount('none', target, 'aufs', { data });
    } catch (error) {
      this.#mounts.undo(id);
      throw error;
    }
    return target;
  }

  async put(id: string): Promise<void> {
    checkLayerId(id);
    if (this.#mounts.release(id, this.name)) umount(this.#path('mnt', id));
  }

  exists(id: string): boolean {
    checkLayerId(id);
    return fs.existsSync(this.#path('diff', id));
  }

  list(): string[] {
    return fs.readdirSync(path.join(this.home, 'diff')).filter((name) => !name.startsWith('.')).sort();
  }

  parent(id: string): string | undefined {
    return this.ancestors(id)[0];
  }

  status(): StatusPair[] {
    return [
      ['Root Dir', this.home],
      ['Dirs', String(fs.readdirSync(path.join(this.home, 'diff')).filter((name) => !name.startsWith('.')).length)],
    ];
  }

  async cleanup(): Promise<void> {
    for (const id of this.#mounts.ids()) umount(this.#path('mnt', id), { lazy: true });
    this.#mounts.clear();
  }
}
