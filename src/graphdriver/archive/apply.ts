// Unpacks a layer tar onto a folder: whiteouts delete, `.wh..wh..opq` empties
// a directory of what lower layers put there, everything else is created
// with its owner, mode, xattrs and times. No entry may land outside the folder.

import fs from 'node:fs';
import path from 'node:path';
import { debuglog } from 'node:util';

import type { ProgressEvent } from '../driver.js';
import { GraphDriverErrorCode, driverError } from '../errors.js';
import type { TarHeader } from '../tar/header.js';
import { readTar, type TarSource } from '../tar/stream.js';
import { applyMetadata, makeNode, S_IFBLK, S_IFCHR, S_IFIFO, setTimes } from './fsmeta.js';
import { WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE_DIR, WHITEOUT_PREFIX } from './whiteout.js';

const debug = debuglog('dm');

/** Mode of parent folders a tar does not list itself (Docker uses the same). */
const IMPLIED_DIRECTORY_MODE = 0o755;

function invalid(message: string): never {
  throw driverError(GraphDriverErrorCode.INVALID_ARCHIVE, message);
}

/** Returns the entry's path relative to the layer root; rejects a path that leads out of it. */
export function cleanEntryPath(name: string): string {
  const normal = path.posix.normalize(name.replace(/^\/+/, '') || '.').replace(/\/+$/, '');
  if (normal === '..' || normal.startsWith('../')) invalid(`Invalid tar entry ${JSON.stringify(name)}: it points outside the layer`);
  return normal === '.' ? '' : normal;
}

/** Throws when an existing parent of `relative` inside `root` is a symlink, which could lead outside. */
async function checkParents(root: string, relative: string): Promise<void> {
  const parts = relative.split('/').slice(0, -1);
  let current = root;
  for (const part of parts) {
    current = path.join(current, part);
    let stat: fs.Stats;
    try {
      stat = await fs.promises.lstat(current);
    } catch {
      return;
    }
    if (stat.isSymbolicLink()) invalid(`Invalid tar entry ${JSON.stringify(relative)}: its parent ${JSON.stringify(path.relative(root, current))} is a symlink`);
    if (!stat.isDirectory()) return;
  }
}

async function removeAllUnder(dir: string, keep: Set<string>, root: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const child = path.join(dir, name);
    if (keep.has(path.relative(root, child))) continue;
    await fs.promises.rm(child, { recursive: true, force: true });
  }
}

async function createEntry(root: string, target: string, header: TarHeader, data: AsyncIterable<Buffer>): Promise<number> {
  switch (header.type) {
    case 'directory':
      await fs.promises.mkdir(target).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
      return 0;
    case 'file': {
      const handle = await fs.promises.open(target, 'wx', 0o600);
      let written = 0;
      try {
        for await (const chunk of data) {
          await handle.write(chunk);
          written += chunk.length;
        }
      } finally {
        await handle.close();
      }
      return written;
    }
    case 'symlink':
      await fs.promises.symlink(header.linkname ?? '', target);
      return 0;
    case 'link': {
      const linked = cleanEntryPath(header.linkname ?? '');
      await checkParents(root, linked);
      await fs.promises.link(path.join(root, linked), target);
      return 0;
    }
    case 'character-device':
    case 'block-device':
    case 'fifo': {
      let typeBits = S_IFCHR;
      if (header.type === 'fifo') typeBits = S_IFIFO;
      else if (header.type === 'block-device') typeBits = S_IFBLK;
      makeNode(target, typeBits | (header.mode & 0o7777), header.devmajor ?? 0, header.devminor ?? 0);
      return 0;
    }
  }
}

/**
 * Applies the layer tar `source` to `root` (Docker's UnpackLayer). Returns
 * the bytes of file data written.
 */
export async function applyLayer(
  root: string,
  source: TarSource,
  onProgress?: (event: ProgressEvent) => void,
): Promise<number> {
  const unpacked = new Set<string>();
  const directoryTimes: { target: string; header: TarHeader }[] = [];
  let size = 0;
  let entries = 0;
  for await (const { header, data } of readTar(source)) {
    entries++;
    const relative = cleanEntryPath(header.name);
    if (relative === '') {
      // The root entry `./` carries the root's metadata.
      directoryTimes.push({ target: root, header });
      continue;
    }
    await checkParents(root, relative);
    const base = path.posix.basename(relative);
    const parent = path.join(root, path.posix.dirname(relative));
    if (base === WHITEOUT_OPAQUE_DIR) {
      await removeAllUnder(parent, unpacked, root);
      continue;
    }
    if (base.startsWith(WHITEOUT_META_PREFIX)) {
      debug('skipping driver metadata entry %s', relative);
      continue;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      await fs.promises.rm(path.join(parent, base.slice(WHITEOUT_PREFIX.length)), { recursive: true, force: true });
      continue;
    }
    await fs.promises.mkdir(parent, { recursive: true, mode: IMPLIED_DIRECTORY_MODE });
    const target = path.join(root, relative);
    const existing = await fs.promises.lstat(target).catch(() => undefined);
    if (existing && !(existing.isDirectory() && header.type === 'directory')) {
      await fs.promises.rm(target, { recursive: true, force: true });
    }
    size += await createEntry(root, target, header, data);
    unpacked.add(relative);
    onProgress?.({ operation: 'apply', done: size, unit: 'bytes', step: relative });
    if (header.type === 'link') continue;
    const meta = {
      uid: header.uid,
      gid: header.gid,
      mode: header.mode,
      isSymlink: header.type === 'symlink',
      atimeNs: header.mtimeNs,
      mtimeNs: header.mtimeNs,
      xattrs: header.xattrs,
    };
    if (header.type === 'directory') {
      applyMetadata(target, { ...meta, mtimeNs: 0n, atimeNs: 0n });
      directoryTimes.push({ target, header });
    } else applyMetadata(target, meta);
  }
  // Directory times last: creating their children changed them.
  for (const { target, header } of directoryTimes.reverse()) {
    if (target === root) {
      const { uid, gid, mode, mtimeNs, xattrs } = header;
      applyMetadata(target, { uid, gid, mode, isSymlink: false, atimeNs: mtimeNs, mtimeNs, xattrs });
    } else setTimes(target, header.mtimeNs, header.mtimeNs);
  }
  debug('applied %d tar entries, %d bytes of file data, to %s', entries, size, root);
  return size;
}
