// Loop devices by ioctl: attach a file to a free device, find the device a
// file is attached to, detach. No losetup.

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { debuglog } from 'node:util';

import { encodeDev, type DevNumber } from '../ioctl/codec.js';
import { DmError, DmErrorCode, systemError } from '../ioctl/errors.js';
import { libc as loadLibc, S_IFBLK, S_IFCHR, type Libc } from '../ioctl/libc.js';
import {
  decodeLoopInfo,
  encodeLoopConfig,
  encodeLoopInfo,
  LO_FLAGS_AUTOCLEAR,
  LO_FLAGS_READ_ONLY,
  LOOP_CLR_FD,
  LOOP_CONFIGURE,
  LOOP_CTL_GET_FREE,
  LOOP_CTRL_MAJOR,
  LOOP_CTRL_MINOR,
  LOOP_GET_STATUS64,
  LOOP_INFO64_SIZE,
  LOOP_MAJOR,
  LOOP_SET_CAPACITY,
  LOOP_SET_FD,
  LOOP_SET_STATUS64,
  type LoopInfo,
} from '../ioctl/loop.js';

const debug = debuglog('dm');
const { EBUSY, EEXIST, EINVAL, ENOTTY } = osConstants.errno;

/** Attempts before attach gives up when other processes keep taking the free device. */
export const LOOP_ATTACH_ATTEMPTS = 64;
export const LOOP_CONTROL_PATH = '/dev/loop-control';
const SYS_BLOCK = '/sys/block';
const SECTOR_SIZE = 512n;

export interface AttachOptions {
  /** Open the file read-only and set LO_FLAGS_READ_ONLY. */
  readOnly?: boolean;
  /**
   * LO_FLAGS_AUTOCLEAR (default true): the kernel detaches the device when its
   * last opener closes it, so a crashed process leaves no loop device behind.
   */
  autoclear?: boolean;
  /** Byte offset into the file. */
  offset?: bigint;
  /** Bytes of the file to expose; 0 or absent for all of it. */
  sizeLimit?: bigint;
  libc?: Libc;
  /** Folder of the loop nodes; default /dev. */
  devDir?: string;
}

/**
 * An attached loop device. The handle keeps the device open: with autoclear
 * the device stays attached until close() and until every other opener (a dm
 * table, a mount) has let go of it.
 */
export class LoopDevice {
  #fd: number | null;
  readonly #libc: Libc;

  constructor(
    readonly path: string,
    readonly number: number,
    readonly dev: DevNumber,
    readonly backingFile: string,
    fd: number,
    libc: Libc,
  ) {
    this.#fd = fd;
    this.#libc = libc;
  }

  /** The device as `major:minor`, the form dm tables use. */
  get devString(): string {
    return `${this.dev.major}:${this.dev.minor}`;
  }

  /** True while this handle keeps the device open. */
  get isOpen(): boolean {
    return this.#fd !== null;
  }

  /** Size of the device in 512-byte sectors; a partial last sector is not counted. */
  sizeSectors(): bigint {
    return BigInt(fs.readFileSync(`${SYS_BLOCK}/loop${this.number}/size`, 'utf8').trim());
  }

  /** LOOP_GET_STATUS64 of this device. */
  status(): LoopInfo {
    return getStatus(this.#libc, this.#requireFd('LOOP_GET_STATUS64'), this.path);
  }

  /** LOOP_SET_CAPACITY: makes the device follow a grown or shrunk backing file. */
  refreshCapacity(): void {
    const result = this.#libc.ioctlInt(this.#requireFd('LOOP_SET_CAPACITY'), LOOP_SET_CAPACITY, 0);
    if (result < 0) throw loopError(-result, 'LOOP_SET_CAPACITY', this.path);
  }

  /** Closes this handle's descriptor. With autoclear the kernel detaches the device once no other opener remains. */
  close(): void {
    if (this.#fd !== null) fs.closeSync(this.#fd);
    this.#fd = null;
  }

  /** LOOP_CLR_FD, then close. A device still in use is detached when its last user lets go. */
  detach(): void {
    const fd = this.#fd ?? openOrThrow(this.path, fs.constants.O_RDONLY);
    try {
      clearFd(this.#libc, fd, this.path);
    } finally {
      fs.closeSync(fd);
      this.#fd = null;
    }
  }

  #requireFd(command: string): number {
    if (this.#fd === null) {
      throw new DmError(DmErrorCode.CLOSED, `Loop device handle ${this.path} is closed; open it again to run ${command}`, {
        command,
        device: this.path,
      });
    }
    return this.#fd;
  }
}

/**
 * Attaches `file` to a free loop device: LOOP_CTL_GET_FREE, then
 * LOOP_CONFIGURE, falling back to LOOP_SET_FD + LOOP_SET_STATUS64 on kernels
 * before 5.8. A device another process takes in between (EBUSY) is skipped,
 * never cleared.
 */
export function attachLoop(file: string, options: AttachOptions = {}): LoopDevice {
  // The kernel records the path as given; an absolute one stays meaningful, as losetup stores it.
  file = path.resolve(file);
  const libc = options.libc ?? loadLibc();
  const devDir = options.devDir ?? '/dev';
  const readOnly = options.readOnly ?? false;
  const autoclear = options.autoclear ?? true;
  const backingFd = openOrThrow(file, readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR);
  try {
    const size = fs.fstatSync(backingFd, { bigint: true }).size;
    if (size - (options.offset ?? 0n) < SECTOR_SIZE) {
      throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Cannot attach ${file}: it has ${size} bytes, less than one 512-byte sector past the offset`, {
        command: 'LOOP_CONFIGURE',
        path: file,
      });
    }
    const flags = (readOnly ? LO_FLAGS_READ_ONLY : 0) | (autoclear ? LO_FLAGS_AUTOCLEAR : 0);
    const info: Partial<LoopInfo> = {
      flags,
      fileName: file,
      offset: options.offset ?? 0n,
      sizeLimit: options.sizeLimit ?? 0n,
    };
    const controlFd = openLoopControl(libc, devDir);
    try {
      for (let attempt = 1; attempt <= LOOP_ATTACH_ATTEMPTS; attempt++) {
        const number = libc.ioctlInt(controlFd, LOOP_CTL_GET_FREE, 0);
        if (number < 0) throw loopError(-number, 'LOOP_CTL_GET_FREE', LOOP_CONTROL_PATH);
        const loopPath = `${devDir}/loop${number}`;
        const dev = ensureLoopNode(libc, loopPath, number);
        const loopFd = openOrThrow(loopPath, readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR);
        const result = configure(libc, loopFd, backingFd, info);
        if (result === 0) {
          debug('attached %s to %s (flags %d)', file, loopPath, flags);
          return new LoopDevice(loopPath, number, dev, file, loopFd, libc);
        }
        fs.closeSync(loopFd);
        if (result !== -EBUSY) throw loopError(-result, 'LOOP_CONFIGURE', loopPath, file);
        debug('%s was taken by another process, attempt %d of %d', loopPath, attempt, LOOP_ATTACH_ATTEMPTS);
      }
    } finally {
      fs.closeSync(controlFd);
    }
  } finally {
    fs.closeSync(backingFd);
  }
  throw new DmError(
    DmErrorCode.LOOP_ATTACH_FAILED,
    `Attaching ${file} failed: every free loop device was taken by another process in ${LOOP_ATTACH_ATTEMPTS} attempts; retry later`,
    { command: 'LOOP_CONFIGURE', path: file },
  );
}

/**
 * Finds the loop device `file` is attached to, matching the file's device and
 * inode (not the 63-byte lo_file_name, which a long path overflows). The
 * returned handle keeps the device open: close() it when done.
 */
export function findLoopByBackingFile(file: string, options: { libc?: Libc; devDir?: string } = {}): LoopDevice | undefined {
  const libc = options.libc ?? loadLibc();
  const devDir = options.devDir ?? '/dev';
  const stat = fs.statSync(file, { bigint: true });
  for (const number of attachedLoopNumbers()) {
    const loopPath = `${devDir}/loop${number}`;
    let fd: number;
    try {
      fd = fs.openSync(loopPath, fs.constants.O_RDONLY);
    } catch {
      continue;
    }
    let info: LoopInfo;
    try {
      info = getStatus(libc, fd, loopPath);
    } catch {
      fs.closeSync(fd);
      continue;
    }
    if (info.device === stat.dev && info.inode === stat.ino) {
      return new LoopDevice(loopPath, number, readSysDev(number) ?? { major: LOOP_MAJOR, minor: number }, file, fd, libc);
    }
    fs.closeSync(fd);
  }
  return undefined;
}

/** Detaches the loop device at `loopPath` (LOOP_CLR_FD). */
export function detachLoop(loopPath: string, options: { libc?: Libc } = {}): void {
  const libc = options.libc ?? loadLibc();
  const fd = openOrThrow(loopPath, fs.constants.O_RDONLY);
  try {
    clearFd(libc, fd, loopPath);
  } finally {
    fs.closeSync(fd);
  }
}

/** Numbers of the loop devices that have a backing file, from sysfs. */
export function attachedLoopNumbers(): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(SYS_BLOCK);
  } catch {
    return [];
  }
  return entries
    .filter((entry) => /^loop\d+$/.test(entry) && fs.existsSync(`${SYS_BLOCK}/${entry}/loop`))
    .map((entry) => Number(entry.slice('loop'.length)))
    .sort((a, b) => a - b);
}

/** Size of `file` in whole 512-byte sectors: a partial last sector is not counted, as the loop driver does. */
export function fileSizeSectors(file: string): bigint {
  return fs.statSync(file, { bigint: true }).size / SECTOR_SIZE;
}

function configure(libc: Libc, loopFd: number, backingFd: number, info: Partial<LoopInfo>): number {
  const result = libc.ioctlBuffer(loopFd, LOOP_CONFIGURE, encodeLoopConfig(backingFd, info));
  if (result !== -EINVAL && result !== -ENOTTY) return result;
  // Kernels before 5.8 lack LOOP_CONFIGURE: set the fd, then the status.
  debug('LOOP_CONFIGURE unsupported (errno %d), using LOOP_SET_FD + LOOP_SET_STATUS64', -result);
  const setFd = libc.ioctlInt(loopFd, LOOP_SET_FD, backingFd);
  if (setFd < 0) return setFd;
  const status = Buffer.alloc(LOOP_INFO64_SIZE);
  encodeLoopInfo(status, 0, info);
  const setStatus = libc.ioctlBuffer(loopFd, LOOP_SET_STATUS64, status);
  if (setStatus < 0) {
    libc.ioctlInt(loopFd, LOOP_CLR_FD, 0);
    return setStatus;
  }
  return 0;
}

function getStatus(libc: Libc, fd: number, loopPath: string): LoopInfo {
  const buf = Buffer.alloc(LOOP_INFO64_SIZE);
  const result = libc.ioctlBuffer(fd, LOOP_GET_STATUS64, buf);
  if (result < 0) throw loopError(-result, 'LOOP_GET_STATUS64', loopPath);
  return decodeLoopInfo(buf);
}

function clearFd(libc: Libc, fd: number, loopPath: string): void {
  const result = libc.ioctlInt(fd, LOOP_CLR_FD, 0);
  if (result < 0) throw loopError(-result, 'LOOP_CLR_FD', loopPath);
  debug('detached %s', loopPath);
}

function openLoopControl(libc: Libc, devDir: string): number {
  const controlPath = `${devDir}/loop-control`;
  if (!fs.existsSync(controlPath)) {
    const dev = encodeDev({ major: LOOP_CTRL_MAJOR, minor: LOOP_CTRL_MINOR });
    const result = libc.mknod(controlPath, S_IFCHR | 0o600, dev);
    if (result < 0 && result !== -EEXIST) {
      throw systemError(-result, `Creating ${controlPath} (10:237) failed; load the loop module and run as root`, {
        syscall: 'mknod',
        path: controlPath,
      });
    }
  }
  return openOrThrow(controlPath, fs.constants.O_RDWR);
}

/** Makes `/dev/loopN` when udev has not, so a missing node never reads as "no more loop devices". */
function ensureLoopNode(libc: Libc, loopPath: string, number: number): DevNumber {
  const dev = readSysDev(number) ?? { major: LOOP_MAJOR, minor: number };
  if (fs.existsSync(loopPath)) return dev;
  const result = libc.mknod(loopPath, S_IFBLK | 0o660, encodeDev(dev));
  if (result < 0 && result !== -EEXIST) {
    throw systemError(-result, `Creating loop node ${loopPath} (${dev.major}:${dev.minor}) failed`, {
      syscall: 'mknod',
      path: loopPath,
    });
  }
  debug('created missing node %s as %d:%d', loopPath, dev.major, dev.minor);
  return dev;
}

/** Reads the device number sysfs reports for loopN, or undefined when it has none. */
function readSysDev(number: number): DevNumber | undefined {
  try {
    const [major, minor] = fs.readFileSync(`${SYS_BLOCK}/loop${number}/dev`, 'utf8').trim().split(':').map(Number);
    return { major, minor };
  } catch {
    return undefined;
  }
}

function openOrThrow(file: string, flags: number): number {
  try {
    return fs.openSync(file, flags);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw systemError(-(e.errno ?? 0), `Opening ${file} failed`, { syscall: 'open', path: file, cause: e });
  }
}

function loopError(errno: number, command: string, loopPath: string, file?: string): DmError {
  const what = file ? `${command} of ${file} on ${loopPath}` : `${command} on ${loopPath}`;
  return systemError(errno, `${what} failed`, { syscall: 'ioctl', command, device: loopPath, path: file });
}
