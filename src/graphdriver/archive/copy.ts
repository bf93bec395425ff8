// A full copy of a folder tree that keeps what a layer needs: modes, owners,
// nanosecond times, symlinks, hard links, xattrs, device nodes and FIFOs.

import fs from 'node:fs';
import path from 'node:path';

import { applyMetadata, makeNode, readXattrs, S_IFMT, S_IFSOCK, splitDev } from './fsmeta.js';

/**
 * Copies the contents of `source` into the existing folder `target`. Files
 * that share an inode in `source` share one in `target`. Sockets are skipped:
 * they cannot be recreated from a name.
 */
export async function copyTree(source: string, target: string): Promise<void> {
  const links = new Map<string, string>();
  await copyChildren(source, target, links);
  const stat = await fs.promises.lstat(source, { bigint: true });
  applyMetadata(target, metadataOf(stat, readXattrs(source)));
}

function metadataOf(stat: fs.BigIntStats, xattrs: Record<string, Buffer>) {
  return {
    uid: Number(stat.uid),
    gid: Number(stat.gid),
    mode: Number(stat.mode),
    isSymlink: stat.isSymbolicLink(),
    atimeNs: stat.atimeNs,
    mtimeNs: stat.mtimeNs,
    xattrs,
  };
}

async function copyChildren(source: string, target: string, links: Map<string, string>): Promise<void> {
  const names = (await fs.promises.readdir(source)).sort();
  for (const name of names) {
    await copyEntry(path.join(source, name), path.join(target, name), links);
  }
}

async function copyEntry(from: string, to: string, links: Map<string, string>): Promise<void> {
  const stat = await fs.promises.lstat(from, { bigint: true });
  const mode = Number(stat.mode);
  if ((mode & S_IFMT) === S_IFSOCK) return;
  if (!stat.isDirectory() && stat.nlink > 1n) {
    const key = `${stat.dev}:${stat.ino}`;
    const first = links.get(key);
    if (first !== undefined) {
      await fs.promises.link(first, to);
      return;
    }
    links.set(key, to);
  }
  if (stat.isDirectory()) {
    await fs.promises.mkdir(to);
    await copyChildren(from, to, links);
  } else if (stat.isFile()) {
    await fs.promises.copyFile(from, to, fs.constants.COPYFILE_FICLONE);
  } else if (stat.isSymbolicLink()) {
    await fs.promises.symlink(await fs.promises.readlink(from), to);
  } else {
    const { major, minor } = splitDev(stat.rdev);
    makeNode(to, mode, major, minor);
  }
  // Directories get their metadata after their children, so the copy keeps their mtime.
  applyMetadata(to, metadataOf(stat, readXattrs(from)));
}
