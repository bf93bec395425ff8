import type { DevNumber, DmIoctlHeader, TargetSpec } from '../ioctl/codec.js';

/** A device named by its dm name, or by its uuid. */
/**
 * A device named by its dm name, by its uuid, or by its device number (the
 * kernel looks a device up by `dev` when the request has neither).
 */
export type DeviceId = string | { name: string } | { uuid: string } | { major: number; minor: number };

/** Device state from DM_DEV_STATUS, as `dmsetup info` prints it. */
export interface DeviceInfo {
  exists: true;
  name: string;
  uuid: string;
  major: number;
  minor: number;
  /** Number of processes and devices that hold the device open. */
  openCount: number;
  /** Counter the kernel bumps on each dm event (table change, pool low water mark, ...). */
  eventNr: number;
  /** Number of targets in the live table. */
  targetCount: number;
  suspended: boolean;
  readOnly: boolean;
  /** The device has a live table. */
  liveTable: boolean;
  /** A loaded table waits for the next resume. */
  inactiveTable: boolean;
  /** A deferred remove is pending until the last opener closes it. */
  deferredRemove: boolean;
  /** Outcome of the /dev/mapper update, on results of resume and rename. */
  nodeSync?: NodeSyncOutcome;
}

/** The result of `info()` for a device the kernel does not know. */
export interface MissingDevice {
  exists: false;
  name?: string;
  uuid?: string;
  major?: number;
  minor?: number;
}

/** A table line to load; `start` and `length` are 512-byte sectors. */
export type TableTarget = TargetSpec;

/** Operations after which /dev/mapper must be brought in line with the kernel. */
export type NodeOperation =
  | { kind: 'resume'; name: string }
  | { kind: 'remove'; name: string }
  | { kind: 'rename'; name: string; newName: string };

/**
 * One node update in progress. `eventNr` is sent with the ioctl (a udev
 * cookie, or 0); exactly one of `finish` or `abort` is called afterwards.
 */
export interface NodeSyncTask {
  readonly eventNr: number;
  finish(operation: NodeOperation, reply: DmIoctlHeader, dev: DevNumber): Promise<NodeSyncOutcome>;
  abort(): void;
}

/**
 * How the node update ended: `direct` when the library made the node itself,
 * `udev` when udev completed the cookie, `no-uevent` when the kernel sent no
 * uevent, `timeout` when udev did not complete the cookie in time (the library then made
 * sure of the node itself).
 */
export type NodeSyncOutcome = 'direct' | 'udev' | 'no-uevent' | 'timeout' | 'none';

/**
 * Keeps /dev/mapper in step with the kernel around the commands that produce
 * a uevent (resume, remove, rename). The dm layer defines it and the udev
 * layer implements it, so the client never imports node management itself.
 */
export interface NodeSync {
  begin(kind: NodeOperation['kind']): NodeSyncTask;
  /** Called for each device that DM_REMOVE_ALL removed (no cookie is sent with it). */
  nodeRemoved?(name: string): void;
}
