// Loop devices attached by ioctl, against the real kernel.

import fs from 'node:fs';

import { expect } from 'chai';

import { attachLoop, detachLoop, DmError, fileSizeSectors, findLoopByBackingFile, LoopDevice } from '../../src/index.js';
import { LO_FLAGS_AUTOCLEAR, LO_FLAGS_READ_ONLY } from '../../src/ioctl/loop.js';
import { leftoverLoops, sparseFile, workFile } from './helpers.js';

describe('loop devices on the kernel', function () {
  const opened: LoopDevice[] = [];

  afterEach(function () {
    for (const loop of opened.splice(0)) {
      try {
        loop.detach();
      } catch {
        // Already detached by the test or by autoclear.
      }
    }
  });

  function attach(file: string, options = {}): LoopDevice {
    const loop = attachLoop(file, options);
    opened.push(loop);
    return loop;
  }

  it('attach sets autoclear and records the file name', function () {
    const file = sparseFile('attach.img', 8 << 20);
    const loop = attach(file);
    expect(loop.path).to.match(/^\/dev\/loop\d+$/);
    expect(loop.dev.major).to.equal(7);
    const status = loop.status();
    expect(status.flags & LO_FLAGS_AUTOCLEAR).to.equal(LO_FLAGS_AUTOCLEAR);
    expect(status.fileName).to.equal(file);
    expect(loop.sizeSectors()).to.equal(16384n);
    expect(fs.readFileSync(`/sys/block/loop${loop.number}/loop/backing_file`, 'utf8').trim()).to.equal(file);
  });

  it('autoclear detaches once the last opener closes', function () {
    const file = sparseFile('autoclear.img', 1 << 20);
    const loop = attachLoop(file);
    expect(leftoverLoops()).to.include(loop.number);
    loop.close();
    expect(leftoverLoops()).to.not.include(loop.number);
  });

  it('two attaches get different devices', function () {
    const a = attach(sparseFile('a.img', 1 << 20));
    const b = attach(sparseFile('b.img', 1 << 20));
    expect(a.path).to.not.equal(b.path);
  });

  it('finds a device by a backing path over 64 bytes', function () {
    const longName = `${'long-backing-file-name-'.repeat(4)}.img`;
    const file = sparseFile(longName, 1 << 20);
    expect(Buffer.byteLength(file)).to.be.greaterThan(64);
    const loop = attach(file);
    expect(loop.status().fileName).to.have.length(63);
    const found = findLoopByBackingFile(file);
    expect(found?.path).to.equal(loop.path);
    found?.close();
  });

  it('find returns undefined for an unattached file', function () {
    expect(findLoopByBackingFile(sparseFile('free.img', 1 << 20))).to.equal(undefined);
  });

  it('read-only attach sets LO_FLAGS_READ_ONLY', function () {
    const file = sparseFile('ro.img', 1 << 20);
    const loop = attach(file, { readOnly: true });
    expect(loop.status().flags & LO_FLAGS_READ_ONLY).to.equal(LO_FLAGS_READ_ONLY);
    let fd: number | undefined;
    try {
      fd = fs.openSync(loop.path, 'r+');
      expect(() => fs.writeSync(fd as number, Buffer.alloc(512), 0, 512, 0)).to.throw(/EROFS|EPERM|EACCES/);
    } catch (error) {
      expect(String(error)).to.match(/EROFS|EACCES|EPERM/);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  });

  it('size of 513 bytes gives one sector', function () {
    const file = workFile('odd.img');
    fs.writeFileSync(file, Buffer.alloc(513, 1));
    expect(fileSizeSectors(file)).to.equal(1n);
    const loop = attach(file);
    expect(loop.sizeSectors()).to.equal(1n);
  });

  it('detach frees the device', function () {
    const loop = attachLoop(sparseFile('detach.img', 1 << 20));
    loop.detach();
    expect(leftoverLoops()).to.not.include(loop.number);
    expect(loop.isOpen).to.equal(false);
  });

  it('detach of a free device fails with ENXIO', function () {
    const loop = attachLoop(sparseFile('twice.img', 1 << 20));
    const path = loop.path;
    loop.detach();
    try {
      detachLoop(path);
      expect.fail('expected ENXIO');
    } catch (error) {
      expect(error).to.be.instanceOf(DmError);
      expect((error as DmError).code).to.equal('ENXIO');
      expect((error as DmError).message).to.contain(path);
    }
  });

  it('creates a missing /dev/loopN node', function () {
    if (process.env.DM_TEST_HOST) this.skip();
    const probe = attachLoop(sparseFile('probe.img', 1 << 20));
    const number = probe.number;
    probe.detach();
    fs.rmSync(`/dev/loop${number}`);
    const loop = attach(sparseFile('node.img', 1 << 20));
    expect(loop.number).to.equal(number);
    expect(fs.statSync(loop.path).isBlockDevice()).to.equal(true);
  });

  it('missing backing file names the path', function () {
    expect(() => attachLoop(workFile('does-not-exist.img'))).to.throw(DmError, /does-not-exist\.img/);
  });
});
