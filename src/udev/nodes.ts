// Direct management of /dev/mapper/<name> block nodes, for systems where no
// udev daemon makes them (containers, initramfs, the project's test guest),
// and the fallback of the cookie mode when udev does not do its part.

import fs from 'node:fs';
import path from 'node:path';
import { debuglog } from 'node:util';

import { encodeDev, type DevNumber } from '../ioctl/codec.js';
import { DM_DIR } from '../ioctl/constants.js';
import { systemError } from '../ioctl/errors.js';
import { libc as loadLibc, S_IFBLK, type Libc } from '../ioctl/libc.js';
import type { NodeOperation, NodeSync, NodeSyncTask } from '../dm/types.js';
import { cookieEventNr, DmUdevFlag } from './cookie.js';

const debug = debuglog('dm');

/** Permission bits of a node the library makes: root read/write only, as libdm's default. */
export const DM_NODE_MODE = 0o600;

/**
 * Udev flags sent when the library makes the nodes itself: the event is
 * marked as coming from the library, and lvm2's dm and subsystem rules stay
 * out of /dev/mapper so a udev that does run cannot race with the library.
 * libdm sends the same when it bypasses udev (DM_DISABLE_UDEV, or udev sync
 * off). The base is 0, so no semaphore belongs to it and a
 * `dmsetup udevcomplete` of it does nothing. Kernels before interface 4.15
 * ignore event_nr on these commands.
 */
export const DIRECT_UDEV_FLAGS =
  DmUdevFlag.DM_UDEV_PRIMARY_SOURCE_FLAG |
  DmUdevFlag.DM_UDEV_DISABLE_DM_RULES_FLAG |
  DmUdevFlag.DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG;

export interface DirectNodesOptions {
  /** Folder that contains the nodes (default /dev/mapper). */
  dir?: string;
  libc?: Libc;
}

/** One change the library made under /dev/mapper. */
export interface NodeChange {
  action: 'created' | 'replaced' | 'removed';
  path: string;
}

/** Creates, renames and removes /dev/mapper nodes itself, without udev. */
export class DirectNodes implements NodeSync {
  readonly dir: string;
  readonly #libc: Libc | undefined;

  constructor(options: DirectNodesOptions = {}) {
    this.dir = options.dir ?? DM_DIR;
    this.#libc = options.libc;
  }

  begin(): NodeSyncTask {
    return {
      eventNr: cookieEventNr(0, DIRECT_UDEV_FLAGS),
      finish: async (operation: NodeOperation, _reply, dev: DevNumber) => {
        this.apply(operation, dev);
        return 'direct' as const;
      },
      abort: () => {},
    };
  }

  /**
   * Brings the node of `operation` in line with the kernel and returns what
   * it changed. A node that udev made (a link to ../dm-N) counts as right
   * when it leads to the device's number.
   */
  apply(operation: NodeOperation, dev: DevNumber): NodeChange[] {
    const changes: NodeChange[] = [];
    const ensure = (name: string): void => {
      const result = this.ensureNode(name, dev);
      if (result !== 'kept') changes.push({ action: result, path: this.nodePath(name) });
    };
    const remove = (name: string): void => {
      if (this.removeNode(name)) changes.push({ action: 'removed', path: this.nodePath(name) });
    };
    switch (operation.kind) {
      case 'resume':
        ensure(operation.name);
        break;
      case 'remove':
        remove(operation.name);
        break;
      case 'rename':
        // Setting a uuid goes through DM_DEV_RENAME with the name unchanged.
        if (operation.newName !== operation.name) remove(operation.name);
        ensure(operation.newName);
        break;
    }
    return changes;
  }

  /** Removes the node of a device that DM_REMOVE_ALL took away. */
  nodeRemoved(name: string): void {
    this.removeNode(name);
  }

  /** Path of the node for device `name` (the kernel's form of the name, mangled where needed). */
  nodePath(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * Makes `name`'s node lead to block device `dev` and returns what it did.
   * A block node or a link to one with that number stays. Anything else
   * there is replaced by a new block node.
   */
  ensureNode(name: string, dev: DevNumber): 'kept' | 'created' | 'replaced' {
    const nodePath = this.nodePath(name);
    const wanted = encodeDev(dev);
    const target = statOrUndefined(nodePath, fs.statSync);
    if (target?.isBlockDevice() && target.rdev === wanted) return 'kept';
    const replacing = statOrUndefined(nodePath, fs.lstatSync) !== undefined;
    if (replacing) {
      debug('replacing stale node %s', nodePath);
      fs.unlinkSync(nodePath);
    }
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const libc = this.#libc ?? loadLibc();
    const result = libc.mknod(nodePath, S_IFBLK | DM_NODE_MODE, wanted);
    if (result < 0) {
      throw systemError(-result, `Creating node ${nodePath} (${dev.major}:${dev.minor}) failed`, {
        syscall: 'mknod',
        device: name,
        path: nodePath,
      });
    }
    debug('created node %s as %d:%d', nodePath, dev.major, dev.minor);
    return replacing ? 'replaced' : 'created';
  }

  /** Removes `name`'s node and returns true; a missing node is not an error and returns false. */
  removeNode(name: string): boolean {
    const nodePath = this.nodePath(name);
    try {
      fs.unlinkSync(nodePath);
      debug('removed node %s', nodePath);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return false;
    }
  }
}

/** Stats `file`; undefined when it, or a link's target, does not exist. */
function statOrUndefined(file: string, stat: typeof fs.statSync): fs.BigIntStats | undefined {
  try {
    return stat(file, { bigint: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}
