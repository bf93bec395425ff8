// In-memory file tree of an initramfs, written out as one newc cpio archive.

import { lstatSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { posix } from 'node:path';

import { CpioWriter } from './cpio.mjs';
import { GuestError } from './host.mjs';

const MAX_SYMLINK_DEPTH = 40;
const DIRECTORY_MODE = 0o755;
const PERMISSION_BITS = 0o7777;
const MS_PER_SECOND = 1000;

/**
 * File tree of an image, keyed by absolute path. Paths are resolved through
 * the symbolic links already in the tree, so adding /lib/modules/x after a
 * /lib -> usr/lib link puts x under /usr/lib/modules. The first entry added
 * at a path wins and later ones are ignored.
 */
export class ImageTree {
  #entries = new Map();

  get size() {
    return this.#entries.size;
  }

  // Total size in bytes of the regular files, for progress messages.
  get fileBytes() {
    let total = 0;
    for (const entry of this.#entries.values()) {
      if (entry.type === 'file') {
        total += entry.size;
      }
    }
    return total;
  }

  addDirectory(path, mode = DIRECTORY_MODE) {
    const directory = this.#resolveDirectory(path, false);
    this.#entries.get(directory).mode = mode;
  }

  addFile(path, data, mode = 0o644) {
    const content = typeof data === 'string' ? Buffer.from(data) : data;
    this.#add(path, { type: 'file', mode, data: content, size: content.length });
  }

  addSymlink(path, target) {
    this.#add(path, { type: 'symlink', target });
  }

  /** Creates folder `path` as on the host, as the same symbolic link if it is one there. */
  addHostDirectory(path) {
    this.#resolveDirectory(path, true);
  }

  /**
   * Copies a host file to `imagePath` (by default the same path), following
   * symbolic links on the host. When the paths are equal, it mirrors the
   * host's links on the way, so /lib64/ld-linux-x86-64.so.2 arrives with
   * the same chain of links as on the host.
   */
  addHostFile(hostPath, imagePath = hostPath) {
    const mirror = imagePath === hostPath;
    const stats = lstatSync(hostPath);
    if (mirror && stats.isSymbolicLink()) {
      const target = readlinkSync(hostPath);
      const parent = this.#resolveDirectory(posix.dirname(hostPath), true);
      this.#add(posix.join(parent, posix.basename(hostPath)), { type: 'symlink', target });
      this.addHostFile(posix.resolve(posix.dirname(hostPath), target));
      return;
    }
    const fileStats = statSync(hostPath);
    if (!fileStats.isFile()) {
      throw new GuestError(`cannot copy ${hostPath} into the image: it is not a regular file`);
    }
    const parent = this.#resolveDirectory(posix.dirname(imagePath), mirror);
    this.#add(posix.join(parent, posix.basename(imagePath)), {
      type: 'file',
      mode: fileStats.mode & PERMISSION_BITS,
      mtime: fileStats.mtimeMs / MS_PER_SECOND,
      source: hostPath,
      size: fileStats.size,
    });
  }

  /**
   * Copies a host folder recursively to `imagePath`. Symbolic links are
   * copied as links, other special files are skipped, and `exclude(relative)`
   * may skip paths relative to `hostDir`.
   */
  addHostTree(hostDir, imagePath, exclude = () => false, relative = '') {
    this.addDirectory(imagePath, statSync(hostDir).mode & PERMISSION_BITS);
    for (const dirent of readdirSync(hostDir, { withFileTypes: true })) {
      const childRelative = relative ? `${relative}/${dirent.name}` : dirent.name;
      if (exclude(childRelative)) {
        continue;
      }
      const hostChild = posix.join(hostDir, dirent.name);
      const imageChild = posix.join(imagePath, dirent.name);
      if (dirent.isDirectory()) {
        this.addHostTree(hostChild, imageChild, exclude, childRelative);
      } else if (dirent.isSymbolicLink()) {
        this.addSymlink(imageChild, readlinkSync(hostChild));
      } else if (dirent.isFile()) {
        this.addHostFile(hostChild, imageChild);
      }
    }
  }

  /** Writes the tree as one cpio archive, parents before their children. */
  writeArchive(sink) {
    const writer = new CpioWriter(sink);
    const paths = [...this.#entries.keys()].sort();
    for (const path of paths) {
      const entry = this.#entries.get(path);
      const name = path.slice(1);
      if (entry.type === 'dir') {
        writer.addDirectory(name, { mode: entry.mode, mtime: entry.mtime });
      } else if (entry.type === 'symlink') {
        writer.addSymlink(name, entry.target, { mtime: entry.mtime });
      } else {
        const data = entry.data ?? readFileSync(entry.source);
        writer.addFile(name, data, { mode: entry.mode, mtime: entry.mtime });
      }
    }
    writer.finish();
  }

  #add(path, entry) {
    const resolved = this.#resolveParent(path, false);
    if (!this.#entries.has(resolved)) {
      this.#entries.set(resolved, entry);
    }
  }

  // Resolves the folder part of `path` and returns the full path inside the tree.
  #resolveParent(path, mirrorHost) {
    const parent = this.#resolveDirectory(posix.dirname(path), mirrorHost);
    return posix.join(parent, posix.basename(path));
  }

  /**
   * Returns the real path in the tree of folder `path`, creating missing
   * folders. With `mirrorHost`, a missing component that is a symbolic link
   * on the host becomes the same link in the tree.
   */
  #resolveDirectory(path, mirrorHost, depth = 0) {
    if (depth > MAX_SYMLINK_DEPTH) {
      throw new GuestError(`too many levels of symbolic links while resolving ${path} in the image`);
    }
    let current = '/';
    for (const component of posix.normalize(path).split('/').filter(Boolean)) {
      const candidate = posix.join(current, component);
      let entry = this.#entries.get(candidate);
      if (!entry) {
        entry = this.#newDirectoryEntry(candidate, mirrorHost);
        this.#entries.set(candidate, entry);
      }
      if (entry.type === 'symlink') {
        current = this.#resolveDirectory(posix.resolve(current, entry.target), mirrorHost, depth + 1);
      } else if (entry.type === 'dir') {
        current = candidate;
      } else {
        throw new GuestError(`cannot create a folder at ${candidate} in the image: a file is already there`);
      }
    }
    return current;
  }

  #newDirectoryEntry(path, mirrorHost) {
    if (mirrorHost) {
      const stats = lstatSync(path, { throwIfNoEntry: false });
      if (stats?.isSymbolicLink()) {
        return { type: 'symlink', target: readlinkSync(path) };
      }
      if (stats?.isDirectory()) {
        return { type: 'dir', mode: stats.mode & PERMISSION_BITS };
      }
    }
    return { type: 'dir', mode: DIRECTORY_MODE };
  }
}
