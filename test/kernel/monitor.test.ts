// The low-water-mark monitor on the real kernel: a volume written past the
// mark makes the pool raise its dm event, and the monitor grows the data
// file before the pool runs out, so no write fails.

import fs from 'node:fs';

import { expect } from 'chai';

import { type DeviceMapper, type ExhaustedEvent, type ExtendEvent, LowWaterMarkMonitor, openDeviceMapper, sectors, ThinPool } from '../../src/index.js';
import { testName, workFile } from './helpers.js';

const MiB = 1024 * 1024;
/** 64 KiB data blocks. */
const BLOCK_SECTORS = 128n;

describe('low water mark monitor', function () {
  let dm: DeviceMapper;
  let pool: ThinPool | undefined;
  let monitor: LowWaterMarkMonitor | undefined;

  beforeEach(function () {
    dm = openDeviceMapper();
  });

  afterEach(async function () {
    await monitor?.stop();
    monitor = undefined;
    await pool?.destroy().catch(() => undefined);
    pool = undefined;
    dm.close();
  });

  async function createPool(suffix: string, dataSize: number, lowWaterMark: bigint): Promise<ThinPool> {
    pool = await ThinPool.create(dm, {
      name: testName(`pool-${suffix}`),
      dataFile: workFile(`${suffix}-data.img`),
      metadataFile: workFile(`${suffix}-meta.img`),
      dataSize,
      metadataSize: 4 * MiB,
      dataBlockSize: BLOCK_SECTORS,
      lowWaterMark,
    });
    return pool;
  }

  it('grows a filling pool', async function () {
    // 8 MiB pool (128 blocks), mark at 64 free blocks, 8 MiB steps up to 40 MiB.
    const created = await createPool('monitor', 8 * MiB, 64n);
    const extensions: ExtendEvent[] = [];
    monitor = new LowWaterMarkMonitor(created, { stepBytes: 8 * MiB, maxBytes: 40 * MiB });
    monitor.on('extend', (event) => extensions.push(event));
    monitor.start();
    created.createThin(1);
    const name = testName('thin-monitor');
    await created.activateThin(name, 1, sectors(65536));
    const handle = await fs.promises.open(`/dev/mapper/${name}`, 'r+');
    try {
      // 24 MiB in 1 MiB writes: three times the starting size.
      for (let i = 0; i < 24; i++) {
        await handle.write(Buffer.alloc(MiB, i + 1), 0, MiB, i * MiB);
        await handle.sync();
      }
    } finally {
      await handle.close();
    }
    const usage = created.usage();
    expect(usage.dataUsed).to.equal(384n);
    expect(usage.dataFree > 64n).to.equal(true);
    expect(extensions.length).to.be.greaterThan(1);
    expect(extensions[0].fromSectors).to.equal(16384n);
    expect(extensions[0].toSectors).to.equal(32768n);
  });

  it('reports ceiling reached', async function () {
    const created = await createPool('ceiling', 8 * MiB, 128n);
    monitor = new LowWaterMarkMonitor(created, { stepBytes: 8 * MiB, maxBytes: 8 * MiB });
    const exhausted = new Promise<ExhaustedEvent>((resolve) => monitor?.once('exhausted', resolve));
    monitor.start();
    const event = await exhausted;
    expect(event.freeBlocks).to.equal(128n);
    expect(event.sizeSectors).to.equal(16384n);
    expect(monitor.extensions).to.equal(0);
  });

  it('rejects step not whole blocks', async function () {
    const created = await createPool('badstep', 8 * MiB, 16n);
    expect(() => new LowWaterMarkMonitor(created, { stepBytes: 4096, maxBytes: 16 * MiB })).to.throw(/data block size/);
  });
});
