// Writer for the "newc" cpio format (magic 070701), the format the Linux
// kernel unpacks as an initramfs. It writes directories, regular files and
// symbolic links.

import { writeSync } from 'node:fs';

const NEWC_MAGIC = '070701';
const TRAILER_NAME = 'TRAILER!!!';
const ALIGNMENT = 4;
const HEX_FIELD_WIDTH = 8;
const MAX_FIELD_VALUE = 0xffffffff;

// File type bits of st_mode, from <sys/stat.h>.
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
const PERMISSION_BITS = 0o7777;
const SYMLINK_PERMISSIONS = 0o777;

// The kernel's initramfs unpacker treats regular files with nlink >= 2 as
// hard links of each other when device and inode numbers match, so files get
// nlink 1 and every entry its own inode number.
const FILE_NLINK = 1;
const DIRECTORY_NLINK = 2;
const FIRST_INODE = 1;

function hexField(value, fieldName) {
  if (!Number.isInteger(value) || value < 0 || value > MAX_FIELD_VALUE) {
    throw new RangeError(`cpio: ${fieldName} ${value} does not fit in a newc header field (0 to ${MAX_FIELD_VALUE})`);
  }
  return value.toString(16).padStart(HEX_FIELD_WIDTH, '0');
}

function paddingLength(length) {
  return (ALIGNMENT - (length % ALIGNMENT)) % ALIGNMENT;
}

// Clamps a timestamp in seconds to the unsigned 32-bit range of the header.
function headerTime(seconds) {
  return Math.min(Math.max(Math.floor(seconds ?? 0), 0), MAX_FIELD_VALUE);
}

function checkName(name) {
  if (name !== TRAILER_NAME && (name === '' || name.startsWith('/') || name.includes('\0'))) {
    throw new Error(`cpio: invalid entry name ${JSON.stringify(name)}: use a relative path without NUL bytes`);
  }
}

/**
 * Streams newc entries to a sink, which is any object with a
 * write(Buffer) method. Entries are written in call order, so callers must
 * add each directory before the entries inside it.
 */
export class CpioWriter {
  #sink;
  #nextInode = FIRST_INODE;
  #finished = false;

  constructor(sink) {
    this.#sink = sink;
  }

  addDirectory(name, { mode = 0o755, mtime = 0 } = {}) {
    this.#writeEntry(name, S_IFDIR | (mode & PERMISSION_BITS), DIRECTORY_NLINK, mtime, null);
  }

  addFile(name, data, { mode = 0o644, mtime = 0 } = {}) {
    const content = typeof data === 'string' ? Buffer.from(data) : data;
    this.#writeEntry(name, S_IFREG | (mode & PERMISSION_BITS), FILE_NLINK, mtime, content);
  }

  addSymlink(name, target, { mtime = 0 } = {}) {
    this.#writeEntry(name, S_IFLNK | SYMLINK_PERMISSIONS, FILE_NLINK, mtime, Buffer.from(target));
  }

  // Writes the trailer entry that ends the archive.
  finish() {
    this.#writeEntry(TRAILER_NAME, 0, FILE_NLINK, 0, null, 0);
    this.#finished = true;
  }

  #writeEntry(name, mode, nlink, mtime, data, inode = this.#nextInode++) {
    if (this.#finished) {
      throw new Error(`cpio: cannot add ${name} after finish()`);
    }
    checkName(name);
    const nameBytes = Buffer.from(`${name}\0`);
    const size = data ? data.length : 0;
    const fields = [
      inode, mode, 0, 0, nlink, headerTime(mtime), size,
      0, 0, 0, 0, nameBytes.length, 0,
    ];
    const fieldNames = [
      'inode', 'mode', 'uid', 'gid', 'nlink', 'mtime', `size of ${name}`,
      'devmajor', 'devminor', 'rdevmajor', 'rdevminor', 'name size', 'check',
    ];
    const header = NEWC_MAGIC + fields.map((value, i) => hexField(value, fieldNames[i])).join('');
    const headerAndName = Buffer.concat([Buffer.from(header, 'latin1'), nameBytes]);
    this.#sink.write(headerAndName);
    this.#writePadding(headerAndName.length);
    if (data && size > 0) {
      this.#sink.write(data);
      this.#writePadding(size);
    }
  }

  #writePadding(length) {
    const padding = paddingLength(length);
    if (padding > 0) {
      this.#sink.write(Buffer.alloc(padding));
    }
  }
}

/** Sink that writes synchronously to an open file descriptor and counts bytes. */
export class FileSink {
  bytesWritten = 0;

  constructor(fd) {
    this.fd = fd;
  }

  write(buffer) {
    let offset = 0;
    while (offset < buffer.length) {
      offset += writeSync(this.fd, buffer, offset, buffer.length - offset);
    }
    this.bytesWritten += buffer.length;
  }
}

/** Sink that collects the archive in memory. */
export class BufferSink {
  chunks = [];

  write(buffer) {
    this.chunks.push(buffer);
  }

  toBuffer() {
    return Buffer.concat(this.chunks);
  }
}
