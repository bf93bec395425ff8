// Reference counts of mounted layers: get() mounts on the first reference,
// put() unmounts on the last.

import { GraphDriverErrorCode, driverError } from './errors.js';

export class MountCounter {
  readonly #counts = new Map<string, number>();

  /** Increments `id`'s count; returns true when this is the first reference. */
  acquire(id: string): boolean {
    const count = this.#counts.get(id) ?? 0;
    this.#counts.set(id, count + 1);
    return count === 0;
  }

  /** Undoes an acquire() whose mount then failed. */
  undo(id: string): void {
    this.release(id, 'get');
  }

  /** Decrements `id`'s count; returns true when that was the last reference. */
  release(id: string, driver: string): boolean {
    const count = this.#counts.get(id) ?? 0;
    if (count === 0) {
      throw driverError(GraphDriverErrorCode.LAYER_NOT_FOUND, `Layer ${id} of driver ${driver} is not mounted; call put() once per get()`);
    }
    if (count === 1) this.#counts.delete(id);
    else this.#counts.set(id, count - 1);
    return count === 1;
  }

  count(id: string): number {
    return this.#counts.get(id) ?? 0;
  }

  /** Ids with at least one reference. */
  ids(): string[] {
    return [...this.#counts.keys()];
  }

  /** Throws when `id` is mounted, before a remove. */
  checkUnused(id: string, driver: string): void {
    const count = this.count(id);
    if (count > 0) {
      throw driverError(
        GraphDriverErrorCode.LAYER_BUSY,
        `Layer ${id} of driver ${driver} is mounted (${count} reference(s)); call put() before removing it`,
      );
    }
  }

  clear(): void {
    this.#counts.clear();
  }
}
