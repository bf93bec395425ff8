// The naive comparison of a layer folder with its parent's: what was added,
// modified or deleted, judged from lstat, link targets and xattrs.

import fs from 'node:fs';
import path from 'node:path';

import type { Change } from '../driver.js';
import { readXattrs } from './fsmeta.js';

const NS_PER_SECOND = 1_000_000_000n;

interface Entry {
  stat: fs.BigIntStats;
  file: string;
}

async function lstatOrUndefined(file: string): Promise<fs.BigIntStats | undefined> {
  try {
    return await fs.promises.lstat(file, { bigint: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw error;
  }
}

/**
 * True when two mtimes are the same, or the same second where one of them
 * lost its nanoseconds (a tar without pax times does that).
 */
function sameTime(a: bigint, b: bigint): boolean {
  if (a === b) return true;
  const sameSecond = a / NS_PER_SECOND === b / NS_PER_SECOND;
  return sameSecond && (a % NS_PER_SECOND === 0n || b % NS_PER_SECOND === 0n);
}

function sameXattrs(a: string, b: string): boolean {
  const left = readXattrs(a);
  const right = readXattrs(b);
  const keys = Object.keys(left);
  if (keys.length !== Object.keys(right).length) return false;
  return keys.every((key) => right[key] !== undefined && left[key].equals(right[key]));
}

/**
 * Compares one path in both trees. Size and mtime are ignored for
 * directories: adding a child changes a directory's mtime, and the child is
 * reported on its own.
 */
async function differs(layer: Entry, parent: Entry): Promise<boolean> {
  const a = layer.stat;
  const b = parent.stat;
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.rdev !== b.rdev) return true;
  if (!a.isDirectory() && (a.size !== b.size || !sameTime(a.mtimeNs, b.mtimeNs))) return true;
  if (a.isSymbolicLink() && (await fs.promises.readlink(layer.file)) !== (await fs.promises.readlink(parent.file))) return true;
  return !sameXattrs(layer.file, parent.file);
}

async function addAll(dir: string, relative: string, changes: Change[]): Promise<void> {
  for (const name of (await fs.promises.readdir(dir)).sort()) {
    const file = path.join(dir, name);
    const rel = path.posix.join(relative, name);
    changes.push({ path: rel, kind: 'added' });
    const stat = await fs.promises.lstat(file);
    if (stat.isDirectory()) await addAll(file, rel, changes);
  }
}

/** Compares one directory level; returns true when anything below changed. */
async function compareDir(layerDir: string, parentDir: string, relative: string, changes: Change[]): Promise<boolean> {
  const layerNames = new Set(await fs.promises.readdir(layerDir));
  const parentNames = new Set(await fs.promises.readdir(parentDir));
  let changed = false;
  for (const name of [...new Set([...layerNames, ...parentNames])].sort()) {
    const rel = path.posix.join(relative, name);
    const layerFile = path.join(layerDir, name);
    const parentFile = path.join(parentDir, name);
    if (!layerNames.has(name)) {
      changes.push({ path: rel, kind: 'deleted' });
      changed = true;
      continue;
    }
    const layerStat = (await lstatOrUndefined(layerFile)) as fs.BigIntStats;
    const parentStat = parentNames.has(name) ? await lstatOrUndefined(parentFile) : undefined;
    if (!parentStat) {
      changes.push({ path: rel, kind: 'added' });
      if (layerStat.isDirectory()) await addAll(layerFile, rel, changes);
      changed = true;
      continue;
    }
    const own = await differs({ stat: layerStat, file: layerFile }, { stat: parentStat, file: parentFile });
    const index = changes.length;
    if (own) changes.push({ path: rel, kind: 'modified' });
    let below = false;
    if (layerStat.isDirectory() && parentStat.isDirectory()) below = await compareDir(layerFile, parentFile, rel, changes);
    else if (layerStat.isDirectory()) {
      await addAll(layerFile, rel, changes);
      below = true;
    }
    // A directory with changes below is listed too, so its mode and owner travel with them.
    if (below && !own) changes.splice(index, 0, { path: rel, kind: 'modified' });
    changed ||= own || below;
  }
  return changed;
}

/** Changes of `layerDir` against `parentDir` (or against nothing), sorted by path. */
export async function changesDirs(layerDir: string, parentDir: string | undefined): Promise<Change[]> {
  const changes: Change[] = [];
  if (parentDir === undefined) await addAll(layerDir, '/', changes);
  else await compareDir(layerDir, parentDir, '/', changes);
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Bytes of regular-file data that added and modified entries carry, each inode counted once. */
export async function changesSize(layerDir: string, changes: readonly Change[]): Promise<number> {
  const seen = new Set<string>();
  let size = 0;
  for (const change of changes) {
    if (change.kind === 'deleted') continue;
    const stat = await fs.promises.lstat(path.join(layerDir, change.path), { bigint: true });
    if (!stat.isFile()) continue;
    const key = `${stat.dev}:${stat.ino}`;
    if (seen.has(key)) continue;
    seen.add(key);
    size += Number(stat.size);
  }
  return size;
}
