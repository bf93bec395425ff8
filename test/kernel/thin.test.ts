// Thin pools over loop devices, end to end on the real kernel.

import fs from 'node:fs';

import { expect } from 'chai';

import { DeviceMapper, DmError, openDeviceMapper, sectors, ThinPool, TransactionIdMismatchError, type ThinPoolFeature, type ThinPoolHealthyStatus } from '../../src/index.js';
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

/** The pool's status, failing the test when the pool reports Fail or Error. */
function okStatus(pool: ThinPool): ThinPoolHealthyStatus {
  const status = pool.status();
  if (status.state !== 'ok') throw new Error(`Pool ${pool.name} reports ${status.state}`);
  return status;
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

  async function createPool(suffix: string, options: { dataSize?: number; features?: ThinPoolFeature[] } = {}): Promise<ThinPool> {
    pool = await ThinPool.create(dm, {
      name: testName(`pool-${suffix}`),
      dataFile: workFile(`${suffix}-data.img`),
      metadataFile: workFile(`${suffix}-meta.img`),
      dataSize: options.dataSize ?? 256 * MiB,
      metadataSize: 8 * MiB,
      features: options.features,
    });
    return pool;
  }

  it('creates the pool with the classic table', async function () {
    const created = await createPool('table');
    const [target] = dm.table(created.name);
    expect(target.type).to.equal('thin-pool');
    expect(target.length).to.equal(524288n);
    expect(target.params).to.equal(`${created.metadataLoop?.devString} ${created.dataLoop?.devString} 128 32768 0`);
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
    if (!originInfo.exists) expect.fail(`${origin} does not exist`);
    expect(originInfo.suspended).to.equal(false);
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
    if (status.state !== 'ok') expect.fail(`pool status is ${status.state}`);
    expect(status.transactionId).to.equal(5n);
    expect(() => created.setTransactionId(0n, 6n)).to.throw(TransactionIdMismatchError, /expected 0 but the pool has 5/);
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

  it('invalid pool table removes files and loops', async function () {
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
      expect.fail('expected the table to be rejected');
    } catch (error) {
      expect((error as DmError).message).to.contain('low water mark');
    }
    expect(fs.existsSync(dataFile)).to.equal(false);
    expect(leftoverLoops()).to.deep.equal([]);
    expect(leftoverDevices(dm)).to.deep.equal([]);
  });

  it('full pool reports out_of_data_space', async function () {
    // 2 MiB of data is 32 blocks of 64 KiB; error_if_no_space fails the write
    // that needs a 33rd block at once instead of queueing it.
    const created = await createPool('full', { dataSize: 2 * MiB, features: ['error_if_no_space'] });
    created.createThin(1);
    const name = testName('thin-full');
    await created.activateThin(name, 1, sectors(8192));
    expect(() => writeAt(`/dev/mapper/${name}`, 0, Buffer.alloc(3 * MiB, 1))).to.throw();
    const status = okStatus(created);
    expect(status.mode).to.equal('out_of_data_space');
    expect(status.noSpace).to.equal('error_if_no_space');
    expect(status.usedDataBlocks).to.equal(32n);
  });

  it('read_only pool reports ro', async function () {
    const first = await createPool('ro');
    first.createThin(1);
    await first.destroy();
    pool = undefined;
    const created = await createPool('ro', { features: ['read_only'] });
    const status = okStatus(created);
    expect(status.mode).to.equal('ro');
    expect(dm.table(created.name)[0].params.trim().endsWith('1 read_only')).to.equal(true);
    expect(() => created.createThin(2)).to.throw(DmError, /read-only/);
  });

  it('deleting a volume frees its blocks', async function () {
    const created = await createPool('freed');
    created.createThin(1);
    const name = testName('thin-freed');
    await created.activateThin(name, 1, THIN_SECTORS);
    writeAt(`/dev/mapper/${name}`, 0, Buffer.alloc(MiB, 1));
    const used = created.usage().dataUsed;
    expect(used).to.equal(16n);
    await created.deactivateThin(name);
    created.deleteThin(1);
    expect(created.usage().dataUsed).to.equal(0n);
  });

  it('thin status maps written sectors', async function () {
    const created = await createPool('mapped');
    created.createThin(1);
    const name = testName('thin-mapped');
    await created.activateThin(name, 1, THIN_SECTORS);
    expect(created.thinStatus(name)).to.deep.equal({ state: 'ok', mappedSectors: 0n });
    writeAt(`/dev/mapper/${name}`, MiB, Buffer.alloc(4096, 1));
    // One 64 KiB block at sector 2048: 128 sectors mapped, highest 2175.
    expect(created.thinStatus(name)).to.deep.equal({ state: 'ok', mappedSectors: 128n, highestMappedSector: 2175n });
  });

  it('metadata snapshot held root', async function () {
    const created = await createPool('metasnap');
    created.reserveMetadataSnapshot();
    const held = okStatus(created);
    expect(typeof held.heldMetadataRoot).to.equal('bigint');
    created.releaseMetadataSnapshot();
    const released = okStatus(created);
    expect(released.heldMetadataRoot).to.equal(undefined);
  });

  it('transaction id mismatch names both ids', async function () {
    const created = await createPool('txmismatch');
    try {
      created.setTransactionId(4544n, 4545n);
      expect.fail('expected a mismatch');
    } catch (error) {
      expect(error).to.be.instanceOf(TransactionIdMismatchError);
      expect((error as TransactionIdMismatchError).expected).to.equal(4544n);
      expect((error as TransactionIdMismatchError).actual).to.equal(0n);
    }
    expect(created.transactionId()).to.equal(0n);
  });

  it('snapshot of inactive volume', async function () {
    const created = await createPool('inactive-snap');
    created.createThin(1);
    const origin = testName('thin-inactive');
    await created.activateThin(origin, 1, THIN_SECTORS);
    writeAt(`/dev/mapper/${origin}`, 0, Buffer.from('kept in the snapshot'));
    await created.deactivateThin(origin);
    await created.createSnapshot(2, 1);
    const snapshot = testName('snap-inactive');
    await created.activateThin(snapshot, 2, THIN_SECTORS);
    expect(readAt(`/dev/mapper/${snapshot}`, 0, 20).toString()).to.equal('kept in the snapshot');
  });

  it('thin volume with external origin', async function () {
    const created = await createPool('extorigin');
    const originFile = workFile('extorigin-origin.img');
    fs.writeFileSync(originFile, Buffer.alloc(Number(THIN_SECTORS) * 512, 0x5a));
    const { attachLoop } = await import('../../src/loop/loop.js');
    const originLoop = attachLoop(originFile, { readOnly: true });
    try {
      created.createThin(1);
      const name = testName('thin-ext');
      await created.activateThin(name, 1, THIN_SECTORS, { externalOrigin: originLoop.devString });
      expect(dm.table(name)[0].params).to.equal(`${created.devString} 1 ${originLoop.devString}`);
      expect(readAt(`/dev/mapper/${name}`, 0, 4)).to.deep.equal(Buffer.alloc(4, 0x5a));
      await created.deactivateThin(name);
    } finally {
      originLoop.close();
    }
  });

  it('growData extends the pool', async function () {
    const created = await createPool('grow', { dataSize: 64 * MiB });
    const length = await created.growData(128 * MiB);
    expect(length).to.equal(262144n);
    expect(dm.table(created.name)[0].length).to.equal(262144n);
    const status = okStatus(created);
    expect(status.totalDataBlocks).to.equal(2048n);
  });

  it('growMetadata extends metadata', async function () {
    const created = await createPool('growmeta');
    await created.growMetadata(16 * MiB);
    const status = okStatus(created);
    expect(status.totalMetadataBlocks).to.equal(4096n);
  });

  it('createThin without id picks free id', async function () {
    const created = await createPool('nextid');
    created.createThin(1);
    const fresh = ThinPool.open(dm, created.name);
    expect(fresh.createThin()).to.equal(2);
  });
});
