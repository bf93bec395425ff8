// mkfs.ext4 (e2fsprogs), the one outside program the driver runs, and a
// reader of the ext4 superblock for the filesystem's uuid.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { GraphDriverErrorCode, driverError } from '../errors.js';

const execFileAsync = promisify(execFile);

/** The ext2/3/4 superblock sits 1024 bytes into the device (fs/ext4/ext4.h). */
export const EXT4_SUPERBLOCK_OFFSET = 1024;
/** s_magic (u16 at 0x38) is EXT4_SUPER_MAGIC 0xEF53; s_uuid is 16 bytes at 0x68. */
export const EXT4_MAGIC_OFFSET = 0x38;
export const EXT4_SUPER_MAGIC = 0xef53;
export const EXT4_UUID_OFFSET = 0x68;
const UUID_BYTES = 16;
const SUPERBLOCK_READ_BYTES = EXT4_UUID_OFFSET + UUID_BYTES;

/** Folders searched for mkfs.ext4 after PATH. */
const SBIN_FOLDERS = ['/usr/sbin', '/sbin'];
/** Docker's arguments: no discard (the thin device is new), inode tables and journal written now. */
export const DEFAULT_EXT4_ARGS = ['-E', 'nodiscard,lazy_itable_init=0,lazy_journal_init=0'];

/** Path of mkfs.<fs>, or undefined when neither PATH nor /sbin has it. */
export function findMkfs(filesystem: string, envPath = process.env.PATH ?? ''): string | undefined {
  const program = `mkfs.${filesystem}`;
  for (const folder of [...envPath.split(':').filter(Boolean), ...SBIN_FOLDERS]) {
    const candidate = path.join(folder, program);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next folder.
    }
  }
  return undefined;
}

/** Returns the mkfs path or throws the error that says to install e2fsprogs. */
export function requireMkfs(filesystem: string): string {
  if (filesystem !== 'ext4') {
    throw driverError(GraphDriverErrorCode.INVALID_OPTION, `Unsupported dm.fs ${filesystem} for a new base device: only ext4 is supported`);
  }
  const program = findMkfs(filesystem);
  if (!program) {
    throw driverError(GraphDriverErrorCode.PROGRAM_FAILED, 'mkfs.ext4 not found in PATH, /usr/sbin or /sbin; install e2fsprogs to create the base device');
  }
  return program;
}

/** Runs mkfs on `device`; `args` replace the default ext4 arguments when given. */
export async function makeFilesystem(program: string, device: string, args: readonly string[], signal?: AbortSignal): Promise<void> {
  const argv = ['-q', ...(args.length > 0 ? args : DEFAULT_EXT4_ARGS), device];
  try {
    await execFileAsync(program, argv, { signal });
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? '').trim();
    throw driverError(GraphDriverErrorCode.PROGRAM_FAILED, `${program} ${argv.join(' ')} failed: ${stderr || (error as Error).message}`, {
      device,
      cause: error,
    });
  }
}

/** The filesystem on `device`: ext4 with its uuid, or undefined when the superblock is not ext2/3/4. */
export function readExt4Uuid(device: string): string | undefined {
  const buf = Buffer.alloc(SUPERBLOCK_READ_BYTES);
  const fd = fs.openSync(device, 'r');
  try {
    fs.readSync(fd, buf, 0, buf.length, EXT4_SUPERBLOCK_OFFSET);
  } finally {
    fs.closeSync(fd);
  }
  if (buf.readUInt16LE(EXT4_MAGIC_OFFSET) !== EXT4_SUPER_MAGIC) return undefined;
  const hex = buf.toString('hex', EXT4_UUID_OFFSET, EXT4_UUID_OFFSET + UUID_BYTES);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
