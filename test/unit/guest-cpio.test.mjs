// Tests for the newc cpio writer that builds the guest initramfs.
// Run with: npx mocha test/unit/guest-cpio.test.mjs

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { BufferSink, CpioWriter, S_IFDIR, S_IFLNK, S_IFREG } from '../../scripts/guest/cpio.mjs';

const HEADER_LENGTH = 110;
const FIELD_COUNT = 13;
const FIELD_WIDTH = 8;
const MAGIC_LENGTH = 6;
const FIELD = { inode: 0, mode: 1, nlink: 4, mtime: 5, size: 6, nameSize: 11 };
const TYPE_MASK = 0o170000;

const align4 = (offset) => Math.ceil(offset / 4) * 4;

// Parses a newc archive into entries, checking the magic and 4-byte alignment as it goes.
function parseNewc(buffer) {
  const entries = [];
  let offset = 0;
  for (;;) {
    expect(offset % 4, `entry offset ${offset} alignment`).to.equal(0);
    expect(buffer.toString('latin1', offset, offset + MAGIC_LENGTH)).to.equal('070701');
    const fields = [];
    for (let i = 0; i < FIELD_COUNT; i++) {
      const start = offset + MAGIC_LENGTH + i * FIELD_WIDTH;
      fields.push(parseInt(buffer.toString('latin1', start, start + FIELD_WIDTH), 16));
    }
    const nameStart = offset + HEADER_LENGTH;
    const nameSize = fields[FIELD.nameSize];
    expect(buffer[nameStart + nameSize - 1], 'NUL after name').to.equal(0);
    const name = buffer.toString('utf8', nameStart, nameStart + nameSize - 1);
    const dataStart = align4(nameStart + nameSize);
    const data = buffer.subarray(dataStart, dataStart + fields[FIELD.size]);
    offset = align4(dataStart + fields[FIELD.size]);
    if (name === 'TRAILER!!!') {
      expect(offset, 'archive length after trailer').to.equal(buffer.length);
      return entries;
    }
    entries.push({ name, fields, data });
  }
}

function sampleArchive() {
  const sink = new BufferSink();
  const writer = new CpioWriter(sink);
  writer.addDirectory('etc', { mode: 0o755, mtime: 1700000000 });
  writer.addFile('etc/hostname', 'guest\n', { mode: 0o644 });
  writer.addFile('etc/odd', Buffer.from([1, 2, 3]), { mode: 0o600 });
  writer.addFile('empty', Buffer.alloc(0));
  writer.addSymlink('etc/link', 'hostname');
  writer.finish();
  return sink.toBuffer();
}

describe('guest cpio writer', () => {
  it('writes entries in call order', () => {
    const names = parseNewc(sampleArchive()).map((entry) => entry.name);
    expect(names).to.deep.equal(['etc', 'etc/hostname', 'etc/odd', 'empty', 'etc/link']);
  });

  it('stores file types and permissions', () => {
    const [dir, hostname, odd, , link] = parseNewc(sampleArchive());
    expect(dir.fields[FIELD.mode]).to.equal(S_IFDIR | 0o755);
    expect(hostname.fields[FIELD.mode]).to.equal(S_IFREG | 0o644);
    expect(odd.fields[FIELD.mode]).to.equal(S_IFREG | 0o600);
    expect(link.fields[FIELD.mode] & TYPE_MASK).to.equal(S_IFLNK);
  });

  it('stores contents and link targets', () => {
    const [, hostname, odd, empty, link] = parseNewc(sampleArchive());
    expect(hostname.data.toString()).to.equal('guest\n');
    expect([...odd.data]).to.deep.equal([1, 2, 3]);
    expect(empty.data.length).to.equal(0);
    expect(link.data.toString()).to.equal('hostname');
  });

  it('gives every entry its own inode', () => {
    const inodes = parseNewc(sampleArchive()).map((entry) => entry.fields[FIELD.inode]);
    expect(new Set(inodes).size).to.equal(inodes.length);
  });

  it('sets nlink 1 on files and 2 on folders', () => {
    const [dir, hostname] = parseNewc(sampleArchive());
    expect(dir.fields[FIELD.nlink]).to.equal(2);
    expect(hostname.fields[FIELD.nlink]).to.equal(1);
  });

  it('stores and clamps mtime', () => {
    const sink = new BufferSink();
    const writer = new CpioWriter(sink);
    writer.addFile('old', 'x', { mtime: -5 });
    writer.addFile('new', 'x', { mtime: 1700000000.7 });
    writer.finish();
    const [old, recent] = parseNewc(sink.toBuffer());
    expect(old.fields[FIELD.mtime]).to.equal(0);
    expect(recent.fields[FIELD.mtime]).to.equal(1700000000);
  });

  it('rejects absolute and empty names', () => {
    const writer = new CpioWriter(new BufferSink());
    expect(() => writer.addFile('/etc/passwd', 'x')).to.throw(/invalid entry name/);
    expect(() => writer.addDirectory('')).to.throw(/invalid entry name/);
  });

  it('rejects entries after finish', () => {
    const writer = new CpioWriter(new BufferSink());
    writer.finish();
    expect(() => writer.addFile('late', 'x')).to.throw(/after finish/);
  });

  it('extracts with busybox cpio', function () {
    const probe = spawnSync('busybox', ['cpio', '--help']);
    if (probe.error) {
      this.skip();
    }
    const dir = mkdtempSync(join(tmpdir(), 'guest-cpio-'));
    try {
      writeFileSync(join(dir, 'archive.cpio'), sampleArchive());
      const result = spawnSync('busybox', ['cpio', '-i', '-d', '-F', 'archive.cpio'], { cwd: dir, encoding: 'utf8' });
      expect(result.status, result.stderr).to.equal(0);
      expect(readFileSync(join(dir, 'etc/hostname'), 'utf8')).to.equal('guest\n');
      expect(statSync(join(dir, 'etc/odd')).mode & 0o777).to.equal(0o600);
      expect(readlinkSync(join(dir, 'etc/link'))).to.equal('hostname');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
