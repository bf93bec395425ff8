// The devicemapper graphdriver on the real kernel: a layer chain, restart,
// diff and apply against vfs, the root lock, base device checks, and thin
// ids the pool already has.

import fs from 'node:fs';
import path from 'node:path';

import { expect } from 'chai';

import { newDriver, openDeviceMapper, type DeviceMapper, type Driver } from '../../src/index.js';
import { leftoverDevices, leftoverLoops, workFile } from './helpers.js';

/** Small sizes for a tmpfs guest: little is written to the sparse files. */
export const TEST_OPTIONS = [
  'dm.basesize=64M',
  'dm.loopdatasize=2G',
  'dm.loopmetadatasize=16M',
  'dm.device_prefix=dmioctl-test-gd',
  'dm.mkfsarg=-E',
  'dm.mkfsarg=nodiscard,lazy_itable_init=1,lazy_journal_init=1',
];
const POOL = 'dmioctl-test-gd-pool';

async function rejection(promise: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}

describe('devicemapper graphdriver on the kernel', function () {
  let root: string;
  let driver: Driver | undefined;
  let dm: DeviceMapper;

  async function open(extra: string[] = []): Promise<Driver> {
    driver = await newDriver(root, { name: 'devicemapper', options: [...TEST_OPTIONS, ...extra] });
    return driver;
  }

  async function write(id: string, file: string, text: string): Promise<void> {
    const dir = await (driver as Driver).get(id);
    fs.writeFileSync(path.join(dir, file), text);
    await (driver as Driver).put(id);
  }

  beforeEach(function () {
    root = workFile('gd-root');
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(root, { recursive: true });
    dm = openDeviceMapper();
  });

  afterEach(async function () {
    await driver?.cleanup().catch(() => undefined);
    driver = undefined;
    expect(leftoverDevices(dm)).to.deep.equal([]);
    expect(leftoverLoops()).to.deep.equal([]);
    dm.close();
  });

  it('priority picks devicemapper', async function () {
    driver = await newDriver(root, { options: TEST_OPTIONS, env: {} });
    expect(driver.name).to.equal('devicemapper');
  });

  it('pool uses Docker table', async function () {
    await open();
    const [target] = dm.table(POOL);
    expect(target.type).to.equal('thin-pool');
    expect(target.params).to.match(/^\d+:\d+ \d+:\d+ 128 32768 1 skip_block_zeroing$/);
    // 2 GiB / 512 = 4194304 sectors, a multiple of 128.
    expect(target.length).to.equal(4194304n);
  });

  it('chain sees only ancestors', async function () {
    const d = await open();
    await d.create('l1');
    await write('l1', 'a', 'one');
    await d.create('l2', 'l1');
    await write('l2', 'b', 'two');
    await d.create('l3', 'l2');
    await write('l3', 'c', 'three');
    const l2 = await d.get('l2');
    expect(fs.readdirSync(l2).sort()).to.deep.equal(['a', 'b']);
    await d.put('l2');
    const l1 = await d.get('l1');
    expect(fs.readdirSync(l1)).to.deep.equal(['a']);
    await d.put('l1');
    const l3 = await d.get('l3');
    expect(fs.readFileSync(path.join(l3, 'a'), 'utf8')).to.equal('one');
    expect(fs.readdirSync(l3).sort()).to.deep.equal(['a', 'b', 'c']);
    await d.put('l3');
  });

  it('restart finds every layer', async function () {
    const d = await open();
    await d.create('l1');
    await write('l1', 'a', 'one');
    await d.create('l2', 'l1');
    await write('l2', 'b', 'two');
    await d.cleanup();
    expect(dm.info(POOL).exists).to.equal(false);
    const again = await open();
    expect(again.list()).to.deep.equal(['l1', 'l2']);
    expect(again.parent('l2')).to.equal('l1');
    const l2 = await again.get('l2');
    expect(fs.readFileSync(path.join(l2, 'b'), 'utf8')).to.equal('two');
    await again.put('l2');
  });

  it('diff applies between drivers', async function () {
    const d = await open();
    await d.create('l1');
    await write('l1', 'a', 'one');
    await d.create('l2', 'l1');
    const dir = await d.get('l2');
    fs.rmSync(path.join(dir, 'a'));
    fs.mkdirSync(path.join(dir, 'etc'));
    fs.writeFileSync(path.join(dir, 'etc', 'big'), Buffer.alloc(3 * 1024 * 1024, 5));
    await d.put('l2');
    const vfsRoot = workFile('gd-vfs');
    fs.rmSync(vfsRoot, { recursive: true, force: true });
    const vfs = await newDriver(vfsRoot, { name: 'vfs' });
    try {
      await vfs.create('v1');
      await vfs.applyDiff('v1', await d.diff('l1'));
      await vfs.create('v2', 'v1');
      expect(await vfs.applyDiff('v2', await d.diff('l2'))).to.equal(3 * 1024 * 1024);
      expect(await vfs.changes('v2')).to.deep.equal(await d.changes('l2'));
      await d.create('r2', 'l1');
      await d.applyDiff('r2', await vfs.diff('v2'));
      expect(await d.changes('r2')).to.deep.equal(await d.changes('l2'));
    } finally {
      await vfs.cleanup();
    }
  });

  it('second process is locked out', async function () {
    await open();
    const error = await rejection(newDriver(root, { name: 'devicemapper', options: TEST_OPTIONS }));
    expect(error.code).to.equal('ERR_GRAPHDRIVER_ROOT_LOCKED');
  });

  it('remove of mounted layer rejects', async function () {
    const d = await open();
    await d.create('l1');
    await d.get('l1');
    const error = await rejection(d.remove('l1'));
    expect(error.code).to.equal('ERR_GRAPHDRIVER_LAYER_BUSY');
    await d.put('l1');
    await d.remove('l1');
    expect(d.exists('l1')).to.equal(false);
    expect(dm.info('dmioctl-test-gd-l1').exists).to.equal(false);
  });

  it('status reports pool and files', async function () {
    const d = await open();
    const status = new Map(d.status());
    expect(status.get('Pool Name')).to.equal(POOL);
    expect(status.get('Pool Blocksize')).to.equal('65.54 kB');
    expect(status.get('Base Device Size')).to.equal('67.11 MB');
    expect(status.get('Backing Filesystem')).to.equal('ext4');
    expect(status.get('Data file')).to.equal(path.join(root, 'devicemapper', 'devicemapper', 'data'));
    expect(status.get('Data Space Total')).to.equal('2.147 GB');
    expect(status.get('Udev Sync Supported')).to.equal('false');
    expect(status.get('Deferred Removal Enabled')).to.equal('false');
  });

  it('taken thin id is skipped', async function () {
    const d = await open();
    const set = JSON.parse(fs.readFileSync(path.join(root, 'devicemapper', 'metadata', 'deviceset-metadata'), 'utf8'));
    const taken = set.next_device_id as number;
    dm.message(POOL, 0, `create_thin ${taken}`);
    await d.create('l1');
    const record = JSON.parse(fs.readFileSync(path.join(root, 'devicemapper', 'metadata', 'layers', 'l1'), 'utf8'));
    expect(record.device_id).to.not.equal(taken);
    dm.message(POOL, 0, `delete ${taken}`);
  });

  it('foreign base device is rejected', async function () {
    const d = await open();
    await d.cleanup();
    driver = undefined;
    const file = path.join(root, 'devicemapper', 'metadata', 'deviceset-metadata');
    const set = JSON.parse(fs.readFileSync(file, 'utf8'));
    const real = set.base_device_uuid as string;
    fs.writeFileSync(file, JSON.stringify({ ...set, base_device_uuid: '11111111-1111-1111-1111-111111111111' }));
    const error = await rejection(open());
    expect(error.code).to.equal('ERR_GRAPHDRIVER_BASE_DEVICE_MISMATCH');
    expect(error.message).to.contain(real);
    expect(dm.info(POOL).exists).to.equal(false);
    fs.writeFileSync(file, JSON.stringify(set));
    const again = await open(['dm.fs=xfs']);
    const status = new Map(again.status());
    expect(status.get('Backing Filesystem')).to.equal('ext4');
    expect(status.get('Warning')).to.contain('keeping ext4');
  });
});
