// Shared set-up for the kernel suite: every device and file a test makes
// carries PREFIX, and cleanUp() removes whatever a failed run left behind, so
// one failure never poisons the next run.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { DeviceMapper, openDeviceMapper } from '../../src/index.js';
import { attachedLoopNumbers, detachLoop } from '../../src/loop/loop.js';
import { libc, type Libc } from '../../src/ioctl/libc.js';

export const PREFIX = 'dmioctl-test-';
export const WORK_DIR = path.join(os.tmpdir(), 'dm-ioctl-kernel-tests');

/** A test device name: PREFIX plus `suffix`. */
export function testName(suffix: string): string {
  return `${PREFIX}${suffix}`;
}

/** Path of a scratch file inside the suite's work folder. */
export function workFile(name: string): string {
  fs.mkdirSync(WORK_DIR, { recursive: true });
  return path.join(WORK_DIR, name);
}

/** Creates a sparse file of `bytes` bytes and returns its path. */
export function sparseFile(name: string, bytes: number): string {
  const file = workFile(name);
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, '');
  fs.truncateSync(file, bytes);
  return file;
}

/** A libc binding that counts the ioctls it issues. */
export function countingLibc(): Libc & { ioctls: number } {
  const real = libc();
  const counter = {
    ...real,
    ioctls: 0,
    ioctlBuffer(fd: number, request: number, buf: Buffer): number {
      counter.ioctls++;
      return real.ioctlBuffer(fd, request, buf);
    },
  };
  return counter;
}

/**
 * Removes every test device (dependants first, by retrying until no more can
 * go), then detaches loop devices backed by files in the work folder.
 */
export async function cleanUp(dm: DeviceMapper = openDeviceMapper()): Promise<void> {
  for (let round = 0; round < 8; round++) {
    const left = dm.listDevices().filter((d) => d.name.startsWith(PREFIX));
    if (left.length === 0) break;
    for (const device of left) {
      await dm.remove(device.name, { ignoreMissing: true }).catch(() => undefined);
    }
  }
  for (const number of attachedLoopNumbers()) {
    let backing = '';
    try {
      backing = fs.readFileSync(`/sys/block/loop${number}/loop/backing_file`, 'utf8').trim();
    } catch {
      continue;
    }
    if (backing.startsWith(WORK_DIR)) {
      try {
        detachLoop(`/dev/loop${number}`);
      } catch {
        // Already detached by autoclear.
      }
    }
  }
  fs.rmSync(WORK_DIR, { recursive: true, force: true });
}

/** Names of the test devices the kernel still has. */
export function leftoverDevices(dm: DeviceMapper): string[] {
  return dm.listDevices().map((d) => d.name).filter((name) => name.startsWith(PREFIX));
}

/** Loop devices still backed by files of the work folder. */
export function leftoverLoops(): number[] {
  return attachedLoopNumbers().filter((number) => {
    try {
      return fs.readFileSync(`/sys/block/loop${number}/loop/backing_file`, 'utf8').startsWith(WORK_DIR);
    } catch {
      return false;
    }
  });
}
