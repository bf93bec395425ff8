// Thin pools over loop devices, end to end on the real kernel.

import fs from 'node:fs';

import { expect } from 'chai';

import { DeviceMapper, DmError, openDeviceMapper, ThinPool } from '../../src/index.js';
import { leftoverDevices, leftoverLoops, testName, workFile } from './helpers.js';

const MiB = 1024 * 1024;
const THIN_SECTORS = 65536n; // 32 MiB

function writeAt(device: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(device, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function readAt(device: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(device, 'r');
  try {
    const data = Buffer.alloc(length);
    fs.readSync(fd, data, 0, length, offset);
    return data;
  } finally {
    fs.closeSync(fd);
  }
}

describe('thin pool on the kernel', function () {
  let dm: DeviceMapper;
  let pool: ThinPool | undefined;

  beforeEach(function () {
    dm = openDeviceMapper();
  });

  afterEach(async function () {
    await pool?.destroy().catch(() => undefined);
    pool = undefined;
    dm.close();
  });

  async function createPool(suffix: string): Promise<ThinPool> {
    pool = await ThinPool.create(dm, {
      name: testName(`pool-${suffix}`),
      dataFile: workFile(`${suffix}-data.img`),
      metadataFile: workFile(`${suffix}-meta.img`),
      dataSize: 256 * MiB,
      metadataSize: 8 * MiB,
    });
    return pool;
  }

  it('creates the pool with the classic table', async function () {
    const created = await createPool('table');
    const [target] = dm.table(created.name);
    expect(target.type).to.equal('thin-pool');
    expect(target.length).to.equal(524288n);
    expect(target.params).to.equal(`${created.metadataLoop.devString} ${created.dataLoop.devString} 128 32768 0`);
    const status = created.status();
    expect(status.state).to.equal('ok');
    if (status.state !== 'ok') return;
    expect(status.transactionId).to.equal(0n);
    expect(status.totalDataBlocks).to.equal(4096n);
    expect(status.mode).to.equal('rw');
    expect(status.totalMetadataBlocks).to.equal(2048n);
  });

  it('thin volume, snapshot and data read back', async function () {
    const created = await createPool('snap');
    created.createThin(1);
    const origin = testName('thin-1');
    await created.activateThin(origin, 1, THIN_SECTORS);
    const payload = Buffer.from('written before the snapshot\n'.repeat(100));
    writeAt(`/dev/mapper/${origin}`, 1 * MiB, payload);

    await created.createSnapshot(2, 1);
    const originInfo = dm.info(origin);
    expect(originInfo.exists && originInfo.suspended).to.equal(false);
    const snapshot = testName('snap-2');
    await created.activateThin(snapshot, 2, THIN_SECTORS);
    expect(readAt(`/dev/mapper/${snapshot}`, 1 * MiB, payload.length)).to.deep.equal(payload);

    writeAt(`/dev/mapper/${origin}`, 1 * MiB, Buffer.alloc(payload.length, 0x41));
    expect(readAt(`/dev/mapper/${snapshot}`, 1 * MiB, payload.length)).to.deep.equal(payload);

    const thinStatus = created.thinStatus(origin);
    expect(thinStatus.state).to.equal('ok');
    if (thinStatus.state === 'ok') expect(thinStatus.mappedSectors > 0n).to.equal(true);
    const usage = created.usage();
    expect(usage.dataUsed > 0n).to.equal(true);
    expect(usage.dataFree).to.equal(usage.dataTotal - usage.dataUsed);
  });

  it('create_thin of a used id fails with EEXIST', async function () {
    const created = await createPool('eexist');
    created.createThin(7);
    try {
      created.createThin(7);
      expect.fail('expected EEXIST');
    } catch (error) {
      expect(error).to.be.instanceOf(DmError);
      expect((error as DmError).code).to.equal('EEXIST');
      expect((error as DmError).message).to.contain('id 7 already exists');
      expect((error as DmError).device).to.equal(created.name);
    }
  });

  it('delete of a missing id fails with ENODATA', async function () {
    const created = await createPool('enodata');
    try {
      created.deleteThin(10);
      expect.fail('expected ENODATA');
    } catch (error) {
      expect((error as DmError).code).to.equal('ENODATA');
    }
    created.deleteThin(10, { ignoreMissing: true });
  });

  it('delete after deactivate frees the id', async function () {
    const created = await createPool('delete');
    created.createThin(3);
    const name = testName('thin-3');
    await created.activateThin(name, 3, THIN_SECTORS);
    expect(() => created.deleteThin(3)).to.throw(DmError, /deactivate it/);
    await created.deactivateThin(name);
    created.deleteThin(3);
    created.createThin(3);
  });

  it('set_transaction_id checks the current value', async function () {
    const created = await createPool('txid');
    created.setTransactionId(0n, 5n);
    const status = created.status();
    expect(status.state === 'ok' && status.transactionId).to.equal(5n);
    expect(() => created.setTransactionId(0n, 6n)).to.throw(DmError, /EINVAL/);
  });

  it('destroy leaves no device and no loop behind', async function () {
    const created = await createPool('destroy');
    created.createThin(1);
    await created.activateThin(testName('thin-d'), 1, THIN_SECTORS);
    await created.destroy();
    pool = undefined;
    expect(leftoverDevices(dm)).to.deep.equal([]);
    expect(leftoverLoops()).to.deep.equal([]);
  });

  it('existing pool name is rejected before any file is made', async function () {
    const name = testName('pool-taken');
    dm.create(name);
    const dataFile = workFile('taken-data.img');
    try {
      await ThinPool.create(dm, { name, dataFile, metadataFile: workFile('taken-meta.img'), dataSize: 64 * MiB, metadataSize: 4 * MiB });
      expect.fail('expected EBUSY');
    } catch (error) {
      expect((error as DmError).code).to.equal('EBUSY');
    }
    expect(fs.existsSync(dataFile)).to.equal(false);
    expect(leftoverLoops()).to.deep.equal([]);
    await dm.remove(name);
  });

  it('failed pool load removes files and loops it made', async function () {
    const dataFile = workFile('bad-data.img');
    try {
      await ThinPool.create(dm, {
        name: testName('pool-bad'),
        dataFile,
        metadataFile: workFile('bad-meta.img'),
        dataSize: 64 * MiB,
        metadataSize: 4 * MiB,
        lowWaterMark: 1n << 70n,
      });
      expect.fail('expected the load to fail');
    } catch (error) {
      expect((error as DmError).message).to.contain('DM_TABLE_LOAD');
    }
    expect(fs.existsSync(dataFile)).to.equal(false);
    expect(leftoverLoops()).to.deep.equal([]);
    expect(leftoverDevices(dm)).to.deep.equal([]);
  });
});
