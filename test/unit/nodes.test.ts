// DirectNodes on a temp folder: the fake kernel's mknod() makes a regular
// file that records the mode and device number it was asked for.

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';

import { expect } from 'chai';

import { DeviceMapper } from '../../src/dm/client.js';
import type { TableTarget } from '../../src/dm/types.js';
import { DirectNodes } from '../../src/udev/nodes.js';
import { FakeKernel, makeTempDir, rejectionOf } from './fake-kernel.js';

const { EPERM } = osConstants.errno;

const zeroTable: TableTarget[] = [{ start: 0n, length: 8n, type: 'zero', params: '' }];

/** S_IFBLK | 0600. */
const BLOCK_NODE_MODE = 0o60600;

describe('DirectNodes', function () {
  let dir: string;
  let kernel: FakeKernel;
  let nodes: DirectNodes;
  let dm: DeviceMapper;

  beforeEach(function () {
    dir = makeTempDir('nodes');
    kernel = new FakeKernel();
    nodes = new DirectNodes({ dir, libc: kernel });
    dm = DeviceMapper.open({ controlPath: '/dev/null', libc: kernel, nodeSync: nodes });
  });

  afterEach(function () {
    dm.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function activate(name: string): Promise<void> {
    dm.create(name);
    dm.load(name, zeroTable);
    await dm.resume(name);
  }

  it('resume creates block node', async function () {
    await activate('vol');
    expect(kernel.mknodCalls).to.deep.equal([{ path: path.join(dir, 'vol'), mode: BLOCK_NODE_MODE, dev: 0xfd00n, result: 0 }]);
    expect(fs.existsSync(path.join(dir, 'vol'))).to.equal(true);
  });

  it('resume replaces node of wrong type', async function () {
    fs.writeFileSync(path.join(dir, 'vol'), 'stale');
    await activate('vol');
    expect(kernel.mknodCalls).to.have.length(1);
    expect(fs.readFileSync(path.join(dir, 'vol'), 'utf8')).to.match(/^fake node/);
  });

  it('remove deletes node', async function () {
    await activate('vol');
    await dm.remove('vol');
    expect(fs.existsSync(path.join(dir, 'vol'))).to.equal(false);
  });

  it('remove tolerates missing node', async function () {
    kernel.addDevice('vol');
    await dm.remove('vol');
    expect(kernel.devices.size).to.equal(0);
  });

  it('rename moves node', async function () {
    await activate('vol');
    await dm.rename('vol', 'vol2');
    expect(fs.existsSync(path.join(dir, 'vol'))).to.equal(false);
    expect(fs.existsSync(path.join(dir, 'vol2'))).to.equal(true);
    expect(kernel.mknodCalls[1]).to.deep.equal({ path: path.join(dir, 'vol2'), mode: BLOCK_NODE_MODE, dev: 0xfd00n, result: 0 });
  });

  it('resume reports mknod failure', async function () {
    dm.create('vol');
    dm.load('vol', zeroTable);
    kernel.failNext('mknod', EPERM);
    const error = await rejectionOf(dm.resume('vol'));
    expect(error.code).to.equal('EPERM');
    expect(error.syscall).to.equal('mknod');
    expect(error.path).to.equal(path.join(dir, 'vol'));
    expect(kernel.devices.get('vol')?.live).to.not.equal(undefined);
  });

  it('ensureNode creates missing folder', function () {
    const sub = new DirectNodes({ dir: path.join(dir, 'mapper'), libc: kernel });
    sub.ensureNode('vol', { major: 253, minor: 1 });
    expect(fs.existsSync(path.join(dir, 'mapper', 'vol'))).to.equal(true);
  });

  it('ensureNode encodes minor above 255', function () {
    nodes.ensureNode('vol', { major: 253, minor: 300 });
    // new_encode_dev(253:300): 0x2c low, 0xfd << 8, 0x100 << 12.
    expect(kernel.mknodCalls[0].dev).to.equal(0x10fd2cn);
  });
});
