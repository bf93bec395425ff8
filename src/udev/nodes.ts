// Direct management of /dev/mapper/<name> block nodes, for systems where no
// udev daemon makes them (containers, initramfs, the project's test guest).

import fs from 'node:fs';
import path from 'node:path';
import { debuglog } from 'node:util';

import { encodeDev, type DevNumber } from '../ioctl/codec.js';
import { DM_DIR } from '../ioctl/constants.js';
import { systemError } from '../ioctl/errors.js';
import { libc as loadLibc, S_IFBLK, type Libc } from '../ioctl/libc.js';
import type { NodeOperation, NodeSync, NodeSyncTask } from '../dm/types.js';

const debug = debuglog('dm');

/** Permission bits of a node the library makes: root read/write only, as libdm's default. */
export const DM_NODE_MODE = 0o600;

export interface DirectNodesOptions {
  /** Folder that holds the nodes; default /dev/mapper. */
  dir?: string;
  libc?: Libc;
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
      eventNr: 0,
      finish: async (operation: NodeOperation, _reply, dev: DevNumber) => {
        this.apply(operation, dev);
        return 'direct' as const;
      },
      abort: () => {},
    };
  }

  /** Brings the node of `operation` in line with the kernel. */
  apply(operation: NodeOperation, dev: DevNumber): void {
    switch (operation.kind) {
      case 'resume':
        this.ensureNode(operation.name, dev);
        break;
      case 'remove':
        this.removeNode(operation.name);
        break;
      case 'rename':
        this.removeNode(operation.name);
        this.ensureNode(operation.newName, dev);
        break;
    }
  }

  /** Removes the node of a device that DM_REMOVE_ALL took away. */
  nodeRemoved(name: string): void {
    this.removeNode(name);
  }

  /** Path of the node for device `name`. */
  nodePath(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * Makes `name`'s node a block device with number `dev`, replacing a node
   * that has another number or type.
   */
  ensureNode(name: string, dev: DevNumber): void {
    const nodePath = this.nodePath(name);
    const wanted = encodeDev(dev);
    const existing = lstatOrUndefined(nodePath);
    if (existing) {
      if (existing.isBlockDevice() && existing.rdev === wanted) return;
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
  }

  /** Removes `name`'s node; a missing node is not an error. */
  removeNode(name: string): void {
    const nodePath = this.nodePath(name);
    try {
      fs.unlinkSync(nodePath);
      debug('removed node %s', nodePath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}

function lstatOrUndefined(file: string): fs.BigIntStats | undefined {
  try {
    return fs.lstatSync(file, { bigint: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
