// The vfs driver: a folder per layer, each new layer a full copy of its
// parent. Slow and large, but it works on any filesystem.

import fs from 'node:fs';
import path from 'node:path';
import { debuglog } from 'node:util';

import { copyTree } from './archive/copy.js';
import type { DriverConfig, ProtoDriver, StatusPair } from './driver.js';
import { GraphDriverErrorCode, driverError, isErrno } from './errors.js';
import { checkLayerId } from './ids.js';
import { NaiveDiffDriver } from './naive.js';
import { MountCounter } from './refcount.js';

const debug = debuglog('dm');

export const VFS_DRIVER_NAME = 'vfs';
/** Mode of a layer folder created without a parent. */
const LAYER_DIRECTORY_MODE = 0o755;
const HOME_MODE = 0o700;

export class VfsDriver implements ProtoDriver {
  readonly name = VFS_DRIVER_NAME;
  readonly #mounts = new MountCounter();

  private constructor(readonly home: string) {}

  static async init(root: string, config: DriverConfig = {}): Promise<NaiveDiffDriver> {
    for (const option of config.options ?? []) {
      throw driverError(GraphDriverErrorCode.INVALID_OPTION, `Unknown option ${JSON.stringify(option)} for the vfs driver: it takes none`);
    }
    const home = path.join(root, VFS_DRIVER_NAME);
    for (const folder of ['dir', 'parent', 'staging']) fs.mkdirSync(path.join(home, folder), { recursive: true, mode: HOME_MODE });
    // A copy interrupted by a crash left only a staging folder behind.
    for (const leftover of fs.readdirSync(path.join(home, 'staging'))) {
      fs.rmSync(path.join(home, 'staging', leftover), { recursive: true, force: true });
    }
    return new NaiveDiffDriver(new VfsDriver(home));
  }

  #dir(id: string): string {
    return path.join(this.home, 'dir', id);
  }

  #parentFile(id: string): string {
    return path.join(this.home, 'parent', id);
  }

  async create(id: string, parent?: string): Promise<void> {
    checkLayerId(id);
    if (parent !== undefined) checkLayerId(parent, 'parent id');
    if (this.exists(id)) throw driverError(GraphDriverErrorCode.LAYER_EXISTS, `Layer ${id} already exists in ${this.home}; remove it first or pick another id`);
    if (parent !== undefined && !this.exists(parent)) {
      throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Parent layer ${parent} of ${id} does not exist in ${this.home}`);
    }
    const staging = path.join(this.home, 'staging', id);
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { mode: LAYER_DIRECTORY_MODE });
    try {
      if (parent !== undefined) {
        await copyTree(this.#dir(parent), staging);
        fs.writeFileSync(this.#parentFile(id), `${parent}\n`, { mode: 0o600 });
      }
      fs.renameSync(staging, this.#dir(id));
    } catch (error) {
      fs.rmSync(staging, { recursive: true, force: true });
      fs.rmSync(this.#parentFile(id), { force: true });
      throw error;
    }
    debug('vfs: created layer %s from %s', id, parent ?? '(none)');
  }

  async remove(id: string): Promise<void> {
    checkLayerId(id);
    this.#mounts.checkUnused(id, this.name);
    if (!this.exists(id)) throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Layer ${id} does not exist in ${this.home}`);
    // Rename first so a crash never leaves a half-deleted layer under its id.
    const doomed = path.join(this.home, 'staging', `${id}.removing`);
    fs.renameSync(this.#dir(id), doomed);
    fs.rmSync(this.#parentFile(id), { force: true });
    await fs.promises.rm(doomed, { recursive: true, force: true });
  }

  async get(id: string): Promise<string> {
    checkLayerId(id);
    if (!this.exists(id)) throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Layer ${id} does not exist in ${this.home}`);
    this.#mounts.acquire(id);
    return this.#dir(id);
  }

  async put(id: string): Promise<void> {
    checkLayerId(id);
    this.#mounts.release(id, this.name);
  }

  exists(id: string): boolean {
    checkLayerId(id);
    return fs.existsSync(this.#dir(id));
  }

  list(): string[] {
    return fs.readdirSync(path.join(this.home, 'dir')).sort();
  }

  parent(id: string): string | undefined {
    checkLayerId(id);
    try {
      return fs.readFileSync(this.#parentFile(id), 'utf8').trim() || undefined;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return undefined;
      throw error;
    }
  }

  status(): StatusPair[] {
    return [
      ['Root Dir', this.home],
      ['Layers', String(fs.readdirSync(path.join(this.home, 'dir')).length)],
    ];
  }

  async cleanup(): Promise<void> {
    this.#mounts.clear();
  }
}
