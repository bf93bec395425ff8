// The diff side for drivers without a native one (Docker's NaiveDiffDriver):
// mount the layer and its parent, compare the two trees, write or unpack a
// tar with whiteouts.

import { Readable } from 'node:stream';

import { applyLayer } from './archive/apply.js';
import { changesDirs, changesSize } from './archive/changes.js';
import { exportChanges } from './archive/export.js';
import type { TarSource } from './tar/stream.js';
import type { Change, DiffOptions, Driver, ProtoDriver, StatusPair } from './driver.js';

/** Adds changes, diff, applyDiff and diffSize to `driver` by comparing mounted trees. */
export class NaiveDiffDriver implements Driver {
  constructor(readonly proto: ProtoDriver) {}

  get name(): string {
    return this.proto.name;
  }

  create(id: string, parent?: string): Promise<void> {
    return this.proto.create(id, parent);
  }

  remove(id: string): Promise<void> {
    return this.proto.remove(id);
  }

  get(id: string): Promise<string> {
    return this.proto.get(id);
  }

  put(id: string): Promise<void> {
    return this.proto.put(id);
  }

  exists(id: string): boolean {
    return this.proto.exists(id);
  }

  parent(id: string): string | undefined {
    return this.proto.parent(id);
  }

  list(): string[] {
    return this.proto.list();
  }

  status(): StatusPair[] {
    return this.proto.status();
  }

  cleanup(): Promise<void> {
    return this.proto.cleanup();
  }

  /** Runs `action` with the layer and its parent (if any) mounted. */
  async #withMounted<T>(id: string, action: (layerDir: string, parentDir: string | undefined) => Promise<T>): Promise<T> {
    const parent = this.proto.parent(id);
    const layerDir = await this.proto.get(id);
    try {
      if (parent === undefined) return await action(layerDir, undefined);
      const parentDir = await this.proto.get(parent);
      try {
        return await action(layerDir, parentDir);
      } finally {
        await this.proto.put(parent);
      }
    } finally {
      await this.proto.put(id);
    }
  }

  changes(id: string): Promise<Change[]> {
    return this.#withMounted(id, (layerDir, parentDir) => changesDirs(layerDir, parentDir));
  }

  /**
   * Returns the tar stream of the layer against its parent. Both stay
   * mounted until the stream ends or is destroyed.
   */
  async diff(id: string, options: DiffOptions = {}): Promise<Readable> {
    const parent = this.proto.parent(id);
    const layerDir = await this.proto.get(id);
    let parentDir: string | undefined;
    try {
      if (parent !== undefined) parentDir = await this.proto.get(parent);
      const changes = await changesDirs(layerDir, parentDir);
      let released = false;
      const release = async (): Promise<void> => {
        if (released) return;
        released = true;
        if (parent !== undefined) await this.proto.put(parent);
        await this.proto.put(id);
      };
      const tar = exportChanges(layerDir, changes, options.onProgress);
      async function* releasing(): AsyncGenerator<Buffer> {
        try {
          yield* tar;
        } finally {
          await release();
        }
      }
      const stream = Readable.from(releasing(), { objectMode: false });
      // A stream destroyed before its first read never runs the generator's finally.
      stream.once('close', () => void release());
      return stream;
    } catch (error) {
      if (parentDir !== undefined && parent !== undefined) await this.proto.put(parent);
      await this.proto.put(id);
      throw error;
    }
  }

  async applyDiff(id: string, tar: TarSource, options: DiffOptions = {}): Promise<number> {
    const layerDir = await this.proto.get(id);
    try {
      return await applyLayer(layerDir, tar, options.onProgress);
    } finally {
      await this.proto.put(id);
    }
  }

  diffSize(id: string): Promise<number> {
    return this.#withMounted(id, async (layerDir, parentDir) => changesSize(layerDir, await changesDirs(layerDir, parentDir)));
  }
}
