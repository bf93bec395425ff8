// vfs and overlay on this host's kernel (needs root): copies keep every kind
// of file metadata, chains see their ancestors, diff and apply round-trip
// between drivers. Run: npx mocha 'dist/test/host/**/*.test.js'

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { expect } from 'chai';

import { newDriver, type Driver } from '../../src/graphdriver/index.js';
import { kernelHasFilesystem } from '../../src/graphdriver/mounts.js';
import { makeNode, readXattrs, writeXattrs, setTimes, S_IFCHR, S_IFIFO } from '../../src/graphdriver/archive/fsmeta.js';

const MTIME_NS = 1_600_000_000_123_456_789n;

/** Fills `dir` with one of each kind of entry a layer can hold. */
function populate(dir: string): void {
  fs.mkdirSync(path.join(dir, 'etc'), { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'etc', 'hosts'), '127.0.0.1 localhost\n');
  fs.chownSync(path.join(dir, 'etc', 'hosts'), 1000, 1001);
  fs.chmodSync(path.join(dir, 'etc', 'hosts'), 0o640);
  fs.linkSync(path.join(dir, 'etc', 'hosts'), path.join(dir, 'etc', 'hosts.hard'));
  fs.symlinkSync('hosts', path.join(dir, 'etc', 'hosts.link'));
  fs.mkdirSync(path.join(dir, 'dev'));
  makeNode(path.join(dir, 'dev', 'null'), S_IFCHR | 0o666, 1, 3);
  makeNode(path.join(dir, 'dev', 'fifo'), S_IFIFO | 0o600, 0, 0);
  fs.writeFileSync(path.join(dir, 'setuid'), 'x');
  fs.chmodSync(path.join(dir, 'setuid'), 0o4755);
  writeXattrs(path.join(dir, 'setuid'), { 'trusted.graphdriver-test': Buffer.from('value') });
  fs.writeFileSync(path.join(dir, 'removed'), 'gone soon');
  setTimes(path.join(dir, 'etc', 'hosts'), MTIME_NS, MTIME_NS);
}

function rootFor(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `gd-host-${name}-`));
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return Buffer.concat(parts);
}

function describeRoot(this: Mocha.Context): void {
  if (process.getuid?.() !== 0) this.skip();
}

describe('vfs driver on the host', function () {
  let root: string;
  let driver: Driver;

  before(describeRoot);

  beforeEach(async function () {
    root = rootFor('vfs');
    driver = await newDriver(root, { name: 'vfs' });
    await driver.create('base');
    populate(await driver.get('base'));
    await driver.put('base');
  });

  afterEach(async function () {
    await driver?.cleanup();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('copy keeps owner and mode', async function () {
    await driver.create('child', 'base');
    const dir = await driver.get('child');
    const stat = fs.lstatSync(path.join(dir, 'etc', 'hosts'));
    expect(stat.uid).to.equal(1000);
    expect(stat.gid).to.equal(1001);
    expect(stat.mode & 0o7777).to.equal(0o640);
    expect(fs.lstatSync(path.join(dir, 'setuid')).mode & 0o7777).to.equal(0o4755);
    await driver.put('child');
  });

  it('copy keeps nanosecond mtime', async function () {
    await driver.create('child', 'base');
    const dir = await driver.get('child');
    expect(fs.lstatSync(path.join(dir, 'etc', 'hosts'), { bigint: true }).mtimeNs).to.equal(MTIME_NS);
    await driver.put('child');
  });

  it('copy keeps links and nodes', async function () {
    await driver.create('child', 'base');
    const dir = await driver.get('child');
    expect(fs.lstatSync(path.join(dir, 'etc', 'hosts')).ino).to.equal(fs.lstatSync(path.join(dir, 'etc', 'hosts.hard')).ino);
    expect(fs.readlinkSync(path.join(dir, 'etc', 'hosts.link'))).to.equal('hosts');
    const dev = fs.lstatSync(path.join(dir, 'dev', 'null'));
    expect(dev.isCharacterDevice()).to.equal(true);
    expect(dev.rdev).to.equal(fs.lstatSync('/dev/null').rdev);
    expect(fs.lstatSync(path.join(dir, 'dev', 'fifo')).isFIFO()).to.equal(true);
    await driver.put('child');
  });

  it('copy keeps xattrs', async function () {
    await driver.create('child', 'base');
    const dir = await driver.get('child');
    expect(readXattrs(path.join(dir, 'setuid'))['trusted.graphdriver-test']?.toString()).to.equal('value');
    await driver.put('child');
  });

  it('changes list add, modify, delete', async function () {
    await driver.create('child', 'base');
    const dir = await driver.get('child');
    fs.writeFileSync(path.join(dir, 'etc', 'new'), 'new');
    fs.chmodSync(path.join(dir, 'setuid'), 0o755);
    fs.rmSync(path.join(dir, 'removed'));
    await driver.put('child');
    expect(await driver.changes('child')).to.deep.equal([
      { path: '/etc', kind: 'modified' },
      { path: '/etc/new', kind: 'added' },
      { path: '/removed', kind: 'deleted' },
      { path: '/setuid', kind: 'modified' },
    ]);
  });

  it('untouched copy has no changes', async function () {
    await driver.create('child', 'base');
    expect(await driver.changes('child')).to.deep.equal([]);
  });

  it('diff apply round trip', async function () {
    await driver.create('child', 'base');
    const dir = await driver.get('child');
    fs.writeFileSync(path.join(dir, 'etc', 'new'), Buffer.alloc(100000, 1));
    fs.rmSync(path.join(dir, 'removed'));
    await driver.put('child');
    const tar = await readAll(await driver.diff('child'));
    await driver.create('replay', 'base');
    const size = await driver.applyDiff('replay', [tar]);
    expect(size).to.equal(100000);
    expect(await driver.changes('replay')).to.deep.equal(await driver.changes('child'));
    expect(await driver.diffSize('child')).to.equal(100000);
  });

  it('remove of held layer rejects', async function () {
    await driver.get('base');
    let code: string | undefined;
    try {
      await driver.remove('base');
    } catch (error) {
      code = (error as { code?: string }).code;
    }
    expect(code).to.equal('ERR_GRAPHDRIVER_LAYER_BUSY');
    await driver.put('base');
  });

  it('escaping tar entry is rejected', async function () {
    const { writeTar } = await import('../../src/graphdriver/index.js');
    const evil = await readAll(
      writeTar([{ header: { name: '../escape', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtimeNs: 0n } }]),
    );
    await driver.create('victim', 'base');
    let code: string | undefined;
    try {
      await driver.applyDiff('victim', (async function* () { yield evil; })());
    } catch (error) {
      code = (error as { code?: string }).code;
    }
    expect(code).to.equal('ERR_GRAPHDRIVER_INVALID_ARCHIVE');
    expect(fs.existsSync(path.join(root, 'vfs', 'dir', 'escape'))).to.equal(false);
  });
});

describe('overlay driver on the host', function () {
  let root: string;
  let driver: Driver;

  before(function () {
    if (process.getuid?.() !== 0) this.skip();
    if (!kernelHasFilesystem('overlay')) {
      // The guest loads the overlay module: run the kernel suite there instead.
      this.skip();
    }
  });

  beforeEach(async function () {
    root = rootFor('overlay');
    driver = await newDriver(root, { name: 'overlay' });
  });

  afterEach(async function () {
    await driver?.cleanup();
    fs.rmSync(root, { recursive: true, force: true });
  });

  async function write(id: string, file: string, text: string): Promise<void> {
    const dir = await driver.get(id);
    fs.writeFileSync(path.join(dir, file), text);
    await driver.put(id);
  }

  it('chain sees ancestors only', async function () {
    await driver.create('one');
    await write('one', 'a', 'from one');
    await driver.create('two', 'one');
    await write('two', 'b', 'from two');
    await driver.create('three', 'two');
    await write('three', 'c', 'from three');
    const two = await driver.get('two');
    expect(fs.readFileSync(path.join(two, 'a'), 'utf8')).to.equal('from one');
    expect(fs.existsSync(path.join(two, 'c'))).to.equal(false);
    await driver.put('two');
    const three = await driver.get('three');
    expect(fs.readdirSync(three).sort()).to.deep.equal(['a', 'b', 'c']);
    await driver.put('three');
  });

  it('deletion reaches the diff', async function () {
    await driver.create('one');
    await write('one', 'a', 'x');
    await driver.create('two', 'one');
    const dir = await driver.get('two');
    fs.rmSync(path.join(dir, 'a'));
    await driver.put('two');
    expect(await driver.changes('two')).to.deep.equal([{ path: '/a', kind: 'deleted' }]);
  });

  it('diff applies onto vfs', async function () {
    await driver.create('one');
    populate(await driver.get('one'));
    await driver.put('one');
    await driver.create('two', 'one');
    const dir = await driver.get('two');
    fs.rmSync(path.join(dir, 'removed'));
    fs.writeFileSync(path.join(dir, 'etc', 'added'), 'added');
    await driver.put('two');
    const vfsRoot = rootFor('vfs-target');
    const vfs = await newDriver(vfsRoot, { name: 'vfs' });
    try {
      await vfs.create('one');
      await vfs.applyDiff('one', await driver.diff('one'));
      await vfs.create('two', 'one');
      await vfs.applyDiff('two', await driver.diff('two'));
      expect(await vfs.changes('two')).to.deep.equal(await driver.changes('two'));
      const copy = await vfs.get('two');
      expect(fs.readFileSync(path.join(copy, 'etc', 'added'), 'utf8')).to.equal('added');
      expect(fs.existsSync(path.join(copy, 'removed'))).to.equal(false);
      expect(fs.lstatSync(path.join(copy, 'etc', 'hosts'), { bigint: true }).mtimeNs).to.equal(MTIME_NS);
      await vfs.put('two');
    } finally {
      await vfs.cleanup();
      fs.rmSync(vfsRoot, { recursive: true, force: true });
    }
  });
});
