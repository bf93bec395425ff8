// Writes a list of changes as a layer tar: entries for added and modified
// paths, `.wh.` files for deleted ones, hard links kept within the archive.

import fs from 'node:fs';
import path from 'node:path';

import type { Change, ProgressEvent } from '../driver.js';
import type { TarHeader } from '../tar/header.js';
import { writeTar, type TarEntryInput } from '../tar/stream.js';
import { readXattrs, S_IFMT, S_IFSOCK, splitDev } from './fsmeta.js';
import { WHITEOUT_PREFIX } from './whiteout.js';

const NS_PER_MS = 1_000_000n;

/** The tar header of `file` as it sits on disk, under archive name `name`. */
export async function headerOf(file: string, name: string): Promise<TarHeader | undefined> {
  const stat = await fs.promises.lstat(file, { bigint: true });
  if ((Number(stat.mode) & S_IFMT) === S_IFSOCK) return undefined;
  const header: TarHeader = {
    name,
    type: 'file',
    mode: Number(stat.mode),
    uid: Number(stat.uid),
    gid: Number(stat.gid),
    size: 0,
    mtimeNs: stat.mtimeNs,
  };
  if (stat.isDirectory()) header.type = 'directory';
  else if (stat.isFile()) header.size = Number(stat.size);
  else if (stat.isSymbolicLink()) {
    header.type = 'symlink';
    header.linkname = await fs.promises.readlink(file);
  } else if (stat.isFIFO()) header.type = 'fifo';
  else {
    header.type = stat.isCharacterDevice() ? 'character-device' : 'block-device';
    const { major, minor } = splitDev(stat.rdev);
    header.devmajor = major;
    header.devminor = minor;
  }
  const xattrs = readXattrs(file);
  if (Object.keys(xattrs).length > 0) header.xattrs = xattrs;
  return header;
}

function readChunks(file: string): () => AsyncIterable<Buffer> {
  return () => fs.createReadStream(file);
}

async function* changeEntries(
  layerDir: string,
  changes: readonly Change[],
  onProgress?: (event: ProgressEvent) => void,
): AsyncGenerator<TarEntryInput> {
  const links = new Map<string, string>();
  const total = changes.length;
  let done = 0;
  const nowNs = BigInt(Date.now()) * NS_PER_MS;
  // Plain code-unit order, the same on every locale.
  const sorted = [...changes].sort((a, b) => {
    if (a.path < b.path) return -1;
    if (a.path > b.path) return 1;
    return 0;
  });
  for (const change of sorted) {
    done++;
    const relative = change.path.replace(/^\/+/, '');
    if (change.kind === 'deleted') {
      const name = path.posix.join(path.posix.dirname(relative), `${WHITEOUT_PREFIX}${path.posix.basename(relative)}`);
      yield { header: { name, type: 'file', mode: 0, uid: 0, gid: 0, size: 0, mtimeNs: nowNs } };
      continue;
    }
    const file = path.join(layerDir, relative);
    const header = await headerOf(file, relative);
    if (!header) continue;
    if (header.type === 'file') {
      const stat = await fs.promises.lstat(file, { bigint: true });
      if (stat.nlink > 1n) {
        const key = `${stat.dev}:${stat.ino}`;
        const first = links.get(key);
        if (first !== undefined) {
          yield { header: { ...header, type: 'link', size: 0, linkname: first } };
          continue;
        }
        links.set(key, relative);
      }
    }
    onProgress?.({ operation: 'diff', done, total, unit: 'steps', step: change.path });
    yield { header, data: header.type === 'file' && header.size > 0 ? readChunks(file) : undefined };
  }
}

/** A layer tar of `changes`, read from `layerDir`. */
export function exportChanges(
  layerDir: string,
  changes: readonly Change[],
  onProgress?: (event: ProgressEvent) => void,
): AsyncGenerator<Buffer> {
  return writeTar(changeEntries(layerDir, changes, onProgress));
}
