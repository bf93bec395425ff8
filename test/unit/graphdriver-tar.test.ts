// The tar writer and reader against GNU tar, an independent implementation.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { expect } from 'chai';

import { readTar, writeTar, type TarHeader } from '../../src/graphdriver/index.js';
import { paxRecord } from '../../src/graphdriver/tar/header.js';

const NS = 1_000_000_000n;

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of source) parts.push(chunk);
  return Buffer.concat(parts);
}

function header(fields: Partial<TarHeader> & Pick<TarHeader, 'name' | 'type'>): TarHeader {
  return { mode: 0o644, uid: 0, gid: 0, size: 0, mtimeNs: 1_700_000_000n * NS, ...fields };
}

function gnuTarList(archive: Buffer): string[] {
  const result = spawnSync('tar', ['-tvf', '-', '--numeric-owner', '--full-time'], { input: archive, env: { ...process.env, TZ: 'UTC' } });
  expect(result.status, result.stderr.toString()).to.equal(0);
  return result.stdout.toString().trim().split('\n');
}

describe('graphdriver tar', function () {
  it('pax record length counts itself', function () {
    // "path=abc\n" is 9 bytes, plus " " and the two digits of "12": 12.
    expect(paxRecord('path', 'abc').toString()).to.equal('12 path=abc\n');
  });

  it('pax record length crosses a digit', function () {
    // 1 + "x=" + 94 bytes + "\n" = 98 body bytes with the space; 2 digits give 100, which needs 3.
    const record = paxRecord('x', 'a'.repeat(95));
    expect(record.length).to.equal(Number(record.toString().split(' ')[0]));
  });

  it('GNU tar lists written entries', async function () {
    const longName = `${'deep/'.repeat(40)}file.txt`;
    const archive = await collect(
      writeTar([
        { header: header({ name: 'etc', type: 'directory', mode: 0o755 }) },
        { header: header({ name: 'etc/hosts', type: 'file', size: 5, uid: 1000, gid: 1001 }), data: async function* () { yield Buffer.from('hello'); } },
        { header: header({ name: 'etc/link', type: 'symlink', linkname: 'hosts', mode: 0o777 }) },
        { header: header({ name: 'etc/hard', type: 'link', linkname: 'etc/hosts' }) },
        { header: header({ name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 }) },
        { header: header({ name: longName, type: 'file', size: 0 }) },
      ]),
    );
    const lines = gnuTarList(archive);
    expect(lines[0]).to.match(/^drwxr-xr-x 0\/0 +0 2023-11-14 22:13:20 etc\/$/);
    expect(lines[1]).to.match(/^-rw-r--r-- 1000\/1001 +5 .* etc\/hosts$/);
    expect(lines[2]).to.match(/^lrwxrwxrwx .* etc\/link -> hosts$/);
    expect(lines[3]).to.match(/^hrw-r--r-- .* etc\/hard link to etc\/hosts$/);
    expect(lines[4]).to.match(/^crw-rw-rw- 0\/0 +1,3 .* dev\/null$/);
    expect(lines[5]).to.match(new RegExp(`${longName.replace(/\./g, '\\.')}$`));
  });

  it('reads archives GNU tar wrote', async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gd-tar-'));
    try {
      const src = path.join(dir, 'src');
      const longDir = path.join(src, 'x'.repeat(120));
      fs.mkdirSync(longDir, { recursive: true });
      fs.writeFileSync(path.join(longDir, 'data.bin'), Buffer.alloc(70000, 7));
      fs.symlinkSync('x'.repeat(120), path.join(src, 'link'));
      const result = spawnSync('tar', ['--format=pax', '-cf', '-', '-C', src, '.'], { maxBuffer: 1 << 24 });
      expect(result.status).to.equal(0);
      const seen = new Map<string, { header: TarHeader; bytes: number }>();
      for await (const entry of readTar([result.stdout])) {
        let bytes = 0;
        for await (const chunk of entry.data) bytes += chunk.length;
        seen.set(entry.header.name.replace(/^\.\//, ''), { header: entry.header, bytes });
      }
      const file = seen.get(`${'x'.repeat(120)}/data.bin`);
      expect(file?.bytes).to.equal(70000);
      expect(file?.header.size).to.equal(70000);
      expect(seen.get('link')?.header.type).to.equal('symlink');
      expect(seen.get('link')?.header.linkname).to.equal('x'.repeat(120));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('round trip keeps xattrs and nanoseconds', async function () {
    const written = header({
      name: 'bin/ping',
      type: 'file',
      size: 3,
      mtimeNs: 1_700_000_000_123_456_789n,
      xattrs: { 'security.capability': Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0]) },
    });
    const archive = await collect(writeTar([{ header: written, data: async function* () { yield Buffer.from('abc'); } }]));
    const entries = [];
    for await (const entry of readTar([archive])) {
      entries.push(entry.header);
      for await (const chunk of entry.data) expect(chunk.toString()).to.equal('abc');
    }
    expect(entries).to.have.length(1);
    expect(entries[0].mtimeNs).to.equal(1_700_000_000_123_456_789n);
    expect(entries[0].xattrs?.['security.capability'].toString('hex')).to.equal('0100000220000000');
  });

  it('reader rejects a corrupt checksum', async function () {
    const archive = await collect(writeTar([{ header: header({ name: 'a', type: 'file' }) }]));
    archive[0] ^= 0xff;
    let error: unknown;
    try {
      for await (const entry of readTar([archive])) void entry;
    } catch (caught) {
      error = caught;
    }
    expect((error as { code?: string }).code).to.equal('ERR_GRAPHDRIVER_INVALID_ARCHIVE');
  });
});
