// Loop devices: the loop_info64 and loop_config codecs, and attachLoop
// against the fake kernel with its nodes in a temp folder.

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';

import { expect } from 'chai';

import { DmErrorCode } from '../../src/ioctl/errors.js';
import { decodeLoopInfo, encodeLoopConfig, encodeLoopInfo, truncateUtf8 } from '../../src/ioctl/loop.js';
import { attachLoop, fileSizeSectors } from '../../src/loop/loop.js';
import { catchDmError, FakeKernel, makeTempDir, openFdCount } from './fake-kernel.js';

const { EBUSY, ENODEV, ENOMEM, EPERM } = osConstants.errno;

describe('loop_info64 codec', function () {
  // lo_file_name is 64 bytes at offset 56, so at most 63 bytes and a NUL.
  it('cuts long ASCII path to 63 bytes', function () {
    const buf = Buffer.alloc(232);
    encodeLoopInfo(buf, 0, { fileName: `/${'b'.repeat(99)}` });
    expect(buf.subarray(56, 119)).to.deep.equal(Buffer.from(`/${'b'.repeat(62)}`));
    expect(buf[119]).to.equal(0);
  });

  it('keeps two-byte character whole', function () {
    // "é" would take bytes 62 and 63, so it is dropped entirely.
    const buf = Buffer.alloc(232);
    encodeLoopInfo(buf, 0, { fileName: `/${'a'.repeat(61)}é/tail.img` });
    expect(buf.subarray(56, 120)).to.deep.equal(Buffer.concat([Buffer.from(`/${'a'.repeat(61)}`), Buffer.alloc(2)]));
  });

  it('keeps four-byte character whole', function () {
    // The emoji takes bytes 60 to 63, past the 63-byte limit.
    const buf = Buffer.alloc(232);
    encodeLoopInfo(buf, 0, { fileName: `/${'a'.repeat(59)}😀x` });
    expect(buf.subarray(56, 120)).to.deep.equal(Buffer.concat([Buffer.from(`/${'a'.repeat(59)}`), Buffer.alloc(4)]));
  });

  it('writes offset, size limit and flags', function () {
    const buf = Buffer.alloc(232);
    encodeLoopInfo(buf, 0, { offset: 4096n, sizeLimit: 1048576n, flags: 5 });
    expect(buf.readBigUInt64LE(24)).to.equal(4096n);
    expect(buf.readBigUInt64LE(32)).to.equal(1048576n);
    expect(buf.readUInt32LE(52)).to.equal(5);
  });

  it('decodeLoopInfo reads hand-built struct', function () {
    const buf = Buffer.alloc(232);
    buf.writeBigUInt64LE(0x803n, 0);
    buf.writeBigUInt64LE(1234n, 8);
    buf.writeUInt32LE(4, 40);
    buf.writeUInt32LE(4, 52);
    buf.write('/data.img', 56);
    expect(decodeLoopInfo(buf)).to.deep.equal({
      device: 0x803n,
      inode: 1234n,
      offset: 0n,
      sizeLimit: 0n,
      number: 4,
      flags: 4,
      fileName: '/data.img',
    });
  });

  it('truncateUtf8 steps back over continuation bytes', function () {
    expect(truncateUtf8('aé', 2)).to.equal('a');
  });
});

describe('loop_config codec', function () {
  it('encodeLoopConfig places fields', function () {
    const buf = encodeLoopConfig(9, { flags: 4, fileName: '/x.img' }, 4096);
    expect(buf.length).to.equal(304);
    expect(buf.readUInt32LE(0)).to.equal(9);
    expect(buf.readUInt32LE(4)).to.equal(4096);
    // loop_info64 starts at 8: lo_flags at 8 + 52, lo_file_name at 8 + 56.
    expect(buf.readUInt32LE(60)).to.equal(4);
    expect(buf.subarray(64, 71)).to.deep.equal(Buffer.from('/x.img\0'));
  });
});

describe('fileSizeSectors', function () {
  let dir: string;

  before(function () {
    dir = makeTempDir('sizes');
  });

  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const sizes: [number, bigint][] = [
    [511, 0n],
    [513, 1n],
    [1024, 2n],
    // 100 GiB + 1 byte: the partial last sector is dropped.
    [107374182401, 209715200n],
  ];
  for (const [bytes, sectors] of sizes) {
    it(`counts ${bytes} bytes as ${sectors} sectors`, function () {
      const file = path.join(dir, `${bytes}.img`);
      fs.writeFileSync(file, '');
      fs.truncateSync(file, bytes);
      expect(fileSizeSectors(file)).to.equal(sectors);
    });
  }
});

describe('attachLoop', function () {
  let dir: string;
  let backing: string;
  let kernel: FakeKernel;

  beforeEach(function () {
    dir = makeTempDir('loop');
    backing = path.join(dir, 'backing.img');
    fs.writeFileSync(backing, Buffer.alloc(4096));
    kernel = new FakeKernel();
  });

  afterEach(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Marks loop0 to loop2 as in use by other processes. */
  function takeFirstThree(): void {
    for (const number of [0, 1, 2]) kernel.loops.set(number, { backingFile: '', fileName: '', flags: 0, byOtherProcess: true });
  }

  it('skips device taken after GET_FREE', function () {
    takeFirstThree();
    kernel.racesForLoop = (number) => number === 3;
    const loop = attachLoop(backing, { libc: kernel, devDir: dir });
    loop.close();
    expect(loop.path).to.equal(path.join(dir, 'loop4'));
    expect(loop.number).to.equal(4);
    expect(loop.dev).to.deep.equal({ major: 7, minor: 4 });
    const configures = kernel.loopCallsOf('LOOP_CONFIGURE');
    expect(configures.map((call) => [path.basename(call.path), call.result])).to.deep.equal([
      ['loop3', -EBUSY],
      ['loop4', 0],
    ]);
    expect(kernel.loopCallsOf('LOOP_CTL_GET_FREE')).to.have.length(2);
  });

  it('never clears device taken by others', function () {
    takeFirstThree();
    kernel.racesForLoop = (number) => number === 3;
    attachLoop(backing, { libc: kernel, devDir: dir }).close();
    expect(kernel.loopCallsOf('LOOP_CLR_FD')).to.deep.equal([]);
    expect(kernel.loops.get(3)?.byOtherProcess).to.equal(true);
  });

  it('gives up after 64 busy devices', function () {
    kernel.racesForLoop = () => true;
    const before = openFdCount();
    const error = catchDmError(() => attachLoop(backing, { libc: kernel, devDir: dir }));
    expect(error.code).to.equal(DmErrorCode.LOOP_ATTACH_FAILED);
    expect(kernel.loopCallsOf('LOOP_CONFIGURE')).to.have.length(64);
    expect(kernel.loopCallsOf('LOOP_CLR_FD')).to.deep.equal([]);
    expect(openFdCount()).to.equal(before);
  });

  it('creates missing loop node', function () {
    takeFirstThree();
    attachLoop(backing, { libc: kernel, devDir: dir }).close();
    const node = kernel.mknodCalls.find((call) => call.path === path.join(dir, 'loop3'));
    // S_IFBLK | 0660, block device 7:3.
    expect(node).to.deep.equal({ path: path.join(dir, 'loop3'), mode: 0o60660, dev: 0x703n, result: 0 });
  });

  it('creates missing loop-control node', function () {
    attachLoop(backing, { libc: kernel, devDir: dir }).close();
    // S_IFCHR | 0600, character device 10:237.
    expect(kernel.mknodCalls[0]).to.deep.equal({ path: path.join(dir, 'loop-control'), mode: 0o20600, dev: 0xaedn, result: 0 });
  });

  it('configures in one call', function () {
    attachLoop(backing, { libc: kernel, devDir: dir }).close();
    const [call] = kernel.loopCallsOf('LOOP_CONFIGURE');
    const config = call.bytes as Buffer;
    expect(call.backing).to.deep.equal({ path: backing, accessMode: 'O_RDWR' });
    expect(config.readUInt32LE(60)).to.equal(4); // LO_FLAGS_AUTOCLEAR
    expect(config.subarray(64, 64 + backing.length + 1)).to.deep.equal(Buffer.from(`${backing}\0`));
    expect(kernel.loopCallsOf('LOOP_SET_FD')).to.deep.equal([]);
  });

  it('readOnly opens file read-only', function () {
    attachLoop(backing, { libc: kernel, devDir: dir, readOnly: true }).close();
    const [call] = kernel.loopCallsOf('LOOP_CONFIGURE');
    expect(call.backing?.accessMode).to.equal('O_RDONLY');
    // LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR
    expect((call.bytes as Buffer).readUInt32LE(60)).to.equal(5);
  });

  it('autoclear false clears flag', function () {
    attachLoop(backing, { libc: kernel, devDir: dir, autoclear: false }).close();
    expect((kernel.loopCallsOf('LOOP_CONFIGURE')[0].bytes as Buffer).readUInt32LE(60)).to.equal(0);
  });

  it('writes offset and size limit', function () {
    attachLoop(backing, { libc: kernel, devDir: dir, offset: 512n, sizeLimit: 2048n }).close();
    const config = kernel.loopCallsOf('LOOP_CONFIGURE')[0].bytes as Buffer;
    expect(config.readBigUInt64LE(8 + 24)).to.equal(512n);
    expect(config.readBigUInt64LE(8 + 32)).to.equal(2048n);
  });

  it('falls back without LOOP_CONFIGURE', function () {
    kernel.loopConfigureSupported = false;
    attachLoop(backing, { libc: kernel, devDir: dir }).close();
    expect(kernel.loopCalls.map((call) => call.command)).to.deep.equal([
      'LOOP_CTL_GET_FREE',
      'LOOP_CONFIGURE',
      'LOOP_SET_FD',
      'LOOP_SET_STATUS64',
    ]);
    const status = kernel.loopCallsOf('LOOP_SET_STATUS64')[0].bytes as Buffer;
    expect(status.readUInt32LE(52)).to.equal(4);
    expect(kernel.loops.get(0)?.fileName).to.equal(backing);
  });

  it('fallback clears own failed device', function () {
    kernel.loopConfigureSupported = false;
    kernel.failNext('LOOP_SET_STATUS64', EPERM);
    const error = catchDmError(() => attachLoop(backing, { libc: kernel, devDir: dir }));
    expect(error.code).to.equal('EPERM');
    expect(kernel.loopCallsOf('LOOP_CLR_FD').map((call) => path.basename(call.path))).to.deep.equal(['loop0']);
    expect(kernel.loops.size).to.equal(0);
  });

  it('other errors stop at once', function () {
    kernel.failNext('LOOP_CONFIGURE', ENOMEM);
    const before = openFdCount();
    const error = catchDmError(() => attachLoop(backing, { libc: kernel, devDir: dir }));
    expect(error.code).to.equal('ENOMEM');
    expect(error.command).to.equal('LOOP_CONFIGURE');
    expect(kernel.loopCallsOf('LOOP_CONFIGURE')).to.have.length(1);
    expect(openFdCount()).to.equal(before);
  });

  it('GET_FREE failure names control node', function () {
    kernel.failNext('LOOP_CTL_GET_FREE', ENODEV);
    const error = catchDmError(() => attachLoop(backing, { libc: kernel, devDir: dir }));
    expect(error.code).to.equal('ENODEV');
    expect(error.command).to.equal('LOOP_CTL_GET_FREE');
  });

  it('mknod failure stops attach', function () {
    fs.writeFileSync(path.join(dir, 'loop-control'), '');
    kernel.failNext('mknod', EPERM);
    const error = catchDmError(() => attachLoop(backing, { libc: kernel, devDir: dir }));
    expect(error.code).to.equal('EPERM');
    expect(error.syscall).to.equal('mknod');
    expect(error.path).to.equal(path.join(dir, 'loop0'));
  });

  it('detach clears own device', function () {
    const loop = attachLoop(backing, { libc: kernel, devDir: dir });
    loop.detach();
    expect(kernel.loopCallsOf('LOOP_CLR_FD').map((call) => call.path)).to.deep.equal([loop.path]);
    expect(loop.isOpen).to.equal(false);
    expect(kernel.loops.size).to.equal(0);
  });
});
