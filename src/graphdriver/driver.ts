// The storage driver interface container engines use: layers created from a
// parent, mounted by reference count, and compared with their parent as a
// list of changes or a tar stream with whiteouts.

import type { Readable } from 'node:stream';

import type { TarSource } from './tar/stream.js';

/** One line of `status()`, as `docker info` printed it. */
export type StatusPair = [key: string, value: string];

/** The kind of change to a path in a layer, compared with its parent. */
export type ChangeKind = 'added' | 'modified' | 'deleted';

export interface Change {
  /** Absolute path inside the layer, such as `/etc/hosts`. */
  path: string;
  kind: ChangeKind;
}

/** The part every driver implements itself. */
export interface ProtoDriver {
  readonly name: string;
  /** Creates layer `id` as a copy (or snapshot) of `parent`, or empty without one. */
  create(id: string, parent?: string): Promise<void>;
  /** Removes layer `id`; it must not be mounted. */
  remove(id: string): Promise<void>;
  /** Mounts layer `id` and returns the path of its contents; each call needs one put(). */
  get(id: string): Promise<string>;
  /** Releases one get(); the last release unmounts. */
  put(id: string): Promise<void>;
  exists(id: string): boolean;
  /** Ids of every layer, sorted. */
  list(): string[];
  /** The parent `id` was created from, or undefined for a layer made without one. */
  parent(id: string): string | undefined;
  status(): StatusPair[];
  /** Unmounts everything and releases the driver's resources. */
  cleanup(): Promise<void>;
}

/** A driver with the diff side: every registered driver is one. */
export interface Driver extends ProtoDriver {
  changes(id: string): Promise<Change[]>;
  /** A tar stream of the layer against its parent, deletions as `.wh.` files. */
  diff(id: string, options?: DiffOptions): Promise<Readable>;
  /** Unpacks a layer tar into layer `id`; returns the bytes of file data written. */
  applyDiff(id: string, tar: TarSource, options?: DiffOptions): Promise<number>;
  /** Bytes of file data the layer adds or changes against its parent. */
  diffSize(id: string): Promise<number>;
}

/** Progress of a long operation: `done` and `total` in the unit named. */
export interface ProgressEvent {
  operation: string;
  done: number;
  total?: number;
  unit: 'bytes' | 'steps';
  /** A short description of the current step. */
  step?: string;
}

export interface DiffOptions {
  onProgress?: (event: ProgressEvent) => void;
}

/** Settings a driver's init receives from the registry. */
export interface DriverConfig {
  /** Docker storage options, `key=value` each, such as `dm.basesize=10G`. */
  options?: readonly string[];
  /** Path read to learn the kernel's filesystems; default /proc/filesystems. */
  procFilesystems?: string;
  onProgress?: (event: ProgressEvent) => void;
  /**
   * Test hook: the named step of a devicemapper create or remove kills the
   * process with SIGKILL, to test recovery. Also read from
   * DM_GRAPHDRIVER_CRASH_AT.
   */
  crashAt?: string;
}

/** A driver's constructor as the registry calls it. */
export type InitFunction = (root: string, config: DriverConfig) => Promise<Driver>;
