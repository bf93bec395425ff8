// Reading the kernel's filesystem and mount tables.

import fs from 'node:fs';
import path from 'node:path';

import { umount } from '../ioctl/mount.js';

export const PROC_FILESYSTEMS = '/proc/filesystems';
export const PROC_MOUNTINFO = '/proc/self/mountinfo';

/** True when `/proc/filesystems` (or the file given) lists filesystem `name`. */
export function kernelHasFilesystem(name: string, procFilesystems = PROC_FILESYSTEMS): boolean {
  let text: string;
  try {
    text = fs.readFileSync(procFilesystems, 'utf8');
  } catch {
    return false;
  }
  return text.split('\n').some((line) => line.trim().split(/\s+/).at(-1) === name);
}

/** Decodes the octal escapes (`\040` for a space) mountinfo uses in paths. */
function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Mount points at or below `dir`, deepest first, from /proc/self/mountinfo. */
export function mountPointsUnder(dir: string, mountinfo = PROC_MOUNTINFO): string[] {
  const prefix = path.resolve(dir);
  let text: string;
  try {
    text = fs.readFileSync(mountinfo, 'utf8');
  } catch {
    return [];
  }
  const points = text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => unescapeMountPath(line.split(' ')[4]))
    .filter((point) => point === prefix || point.startsWith(`${prefix}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** True when `dir` is a mount point. */
export function isMountPoint(dir: string, mountinfo = PROC_MOUNTINFO): boolean {
  return mountPointsUnder(dir, mountinfo).includes(path.resolve(dir));
}

/** Lazily unmounts every mount below `dir`: mounts a killed process left behind. */
export function unmountStale(dir: string): string[] {
  const points = mountPointsUnder(dir);
  for (const point of points) umount(point, { lazy: true });
  return points;
}
