// Every modelled target type loaded on the real kernel: the table and status
// the kernel returns are parsed back and compared with what was built.

import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';

import { expect } from 'chai';

import {
  attachLoop,
  buildTarget,
  cacheType,
  cryptType,
  delayType,
  type DeviceMapper,
  errorType,
  flakeyType,
  linearType,
  type LoopDevice,
  mirrorType,
  openDeviceMapper,
  sectors,
  snapshotMergeType,
  snapshotOriginType,
  snapshotType,
  stripedType,
  type TargetType,
  verityType,
  writecacheType,
  zeroType,
} from '../../src/index.js';
import { leftoverDevices, sparseFile, testName } from './helpers.js';

const MiB = 1024 * 1024;
const VERITY_BLOCK = 4096;
const SHA256_BYTES = 32;

/** Loads a kernel module with busybox modprobe; returns the failure text, or undefined when it loaded. */
function modprobe(module: string): string | undefined {
  try {
    execFileSync('modprobe', [module], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    return `modprobe ${module} failed: ${(error as Error).message.split('\n')[0]}`;
  }
}

function writeAt(device: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(device, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

describe('targets on the kernel', function () {
  let dm: DeviceMapper;
  const loops: LoopDevice[] = [];

  function loop(name: string, bytes: number): LoopDevice {
    const device = attachLoop(sparseFile(name, bytes));
    loops.push(device);
    return device;
  }

  /**
   * Creates a device with one target of `type`, then checks that the kernel's
   * table parses back to `params` and returns its parsed status.
   */
  async function roundTrip<P, S>(type: TargetType<P, S>, suffix: string, length: bigint, params: P, options: { readOnly?: boolean; expected?: P } = {}): Promise<S> {
    const name = testName(suffix);
    const target = buildTarget(type, sectors(0), sectors(length), params);
    await dm.createDevice(name, { table: [target], readOnly: options.readOnly });
    const [table] = dm.table(name);
    expect(table.type).to.equal(type.name);
    expect(table.length).to.equal(length);
    expect(type.parseParams(table.params)).to.deep.equal(options.expected ?? params);
    const [status] = dm.status(name);
    return type.parseStatus(status.params);
  }

  beforeEach(function () {
    dm = openDeviceMapper();
  });

  afterEach(async function () {
    for (let round = 0; round < 4; round++) {
      for (const name of leftoverDevices(dm).reverse()) await dm.remove(name, { ignoreMissing: true }).catch(() => undefined);
    }
    for (const device of loops.splice(0)) {
      try {
        device.detach();
      } catch {
        // Autoclear detached it already.
      }
    }
    dm.close();
  });

  it('linear round-trips', async function () {
    const data = loop('linear.img', MiB);
    expect(await roundTrip(linearType, 'linear', 1024n, { device: data.devString, offset: sectors(1024) })).to.deep.equal({});
  });

  it('striped round-trips', async function () {
    const a = loop('stripe-a.img', MiB);
    const b = loop('stripe-b.img', MiB);
    const params = { chunkSize: sectors(128), stripes: [{ device: a.devString, offset: sectors(0) }, { device: b.devString, offset: sectors(256) }] };
    const status = await roundTrip(stripedType, 'striped', 1536n, params);
    expect(status).to.deep.equal({ devices: [a.devString, b.devString], health: ['A', 'A'] });
  });

  it('zero round-trips', async function () {
    expect(await roundTrip(zeroType, 'zero', 8n, {})).to.deep.equal({});
  });

  it('error round-trips', async function () {
    expect(await roundTrip(errorType, 'error', 8n, {})).to.deep.equal({});
  });

  it('flakey round-trips with features', async function () {
    const data = loop('flakey.img', MiB);
    const params = {
      device: data.devString,
      offset: sectors(0),
      upInterval: 60,
      downInterval: 1,
      writes: 'error_writes' as const,
      corruptBioByte: { nthByte: 32, direction: 'r' as const, value: 1, flags: 0 },
    };
    expect(await roundTrip(flakeyType, 'flakey', 2048n, params)).to.deep.equal({});
  });

  it('delay round-trips three classes', async function () {
    const data = loop('delay.img', MiB);
    const params = {
      read: { device: data.devString, offset: sectors(0), delayMs: 0 },
      write: { device: data.devString, offset: sectors(0), delayMs: 10 },
      flush: { device: data.devString, offset: sectors(0), delayMs: 20 },
    };
    expect(await roundTrip(delayType, 'delay', 2048n, params)).to.deep.equal({ reads: 0, writes: 0, flushes: 0 });
  });

  it('crypt round-trips hex key', async function () {
    const data = loop('crypt.img', MiB);
    const params = {
      cipher: 'aes-xts-plain64',
      key: { kind: 'hex' as const, key: randomBytes(64) },
      ivOffset: sectors(0),
      device: data.devString,
      offset: sectors(0),
      options: { allowDiscards: true as const, sectorSize: 4096 },
    };
    expect(await roundTrip(cryptType, 'crypt', 2048n, params)).to.deep.equal({});
  });

  it('snapshot-origin and snapshot round-trip', async function () {
    const origin = loop('snap-origin.img', MiB);
    const cow = loop('snap-cow.img', MiB);
    await roundTrip(snapshotOriginType, 'snap-origin', 2048n, { origin: origin.devString });
    const params = { origin: origin.devString, cowDevice: cow.devString, store: 'P' as const, chunkSize: sectors(8), features: [] };
    const status = await roundTrip(snapshotType, 'snap', 2048n, params);
    expect(status).to.deep.include({ state: 'ok', totalSectors: 2048n });
  });

  it('snapshot-merge round-trips', async function () {
    const origin = loop('merge-origin.img', MiB);
    const cow = loop('merge-cow.img', MiB);
    const params = { origin: origin.devString, cowDevice: cow.devString, store: 'P' as const, chunkSize: sectors(8), features: [] };
    const status = await roundTrip(snapshotMergeType, 'merge', 2048n, params);
    expect(status).to.deep.include({ state: 'ok', totalSectors: 2048n });
  });

  it('transient snapshot becomes Invalid', async function () {
    // A transient (N) snapshot whose COW device has room for 2 chunks of 8 sectors:
    // writing 3 chunks through the origin overflows it.
    const origin = loop('inval-origin.img', MiB);
    const cow = loop('inval-cow.img', 16 * 512);
    const originName = testName('inval-origin');
    await dm.createDevice(originName, { table: [buildTarget(snapshotOriginType, sectors(0), sectors(2048), { origin: origin.devString })] });
    const snapName = testName('inval-snap');
    const params = { origin: origin.devString, cowDevice: cow.devString, store: 'N' as const, chunkSize: sectors(8), features: [] };
    await dm.createDevice(snapName, { table: [buildTarget(snapshotType, sectors(0), sectors(2048), params)] });
    for (let chunk = 0; chunk < 3; chunk++) writeAt(`/dev/mapper/${originName}`, chunk * 8 * 512, Buffer.alloc(512, 1));
    expect(snapshotType.parseStatus(dm.status(snapName)[0].params)).to.deep.equal({ state: 'Invalid' });
  });

  it('persistent overflow snapshot reports Overflow', async function () {
    // PO: a snapshot that runs out of COW space reports Overflow instead of
    // becoming invalid. The COW device has room for its header, one metadata chunk
    // and one data chunk.
    const origin = loop('over-origin.img', MiB);
    const cow = loop('over-cow.img', 24 * 512);
    await dm.createDevice(testName('over-origin'), { table: [buildTarget(snapshotOriginType, sectors(0), sectors(2048), { origin: origin.devString })] });
    const snapName = testName('over-snap');
    const params = { origin: origin.devString, cowDevice: cow.devString, store: 'PO' as const, chunkSize: sectors(8), features: [] };
    await dm.createDevice(snapName, { table: [buildTarget(snapshotType, sectors(0), sectors(2048), params)] });
    for (let chunk = 0; chunk < 3; chunk++) {
      try {
        writeAt(`/dev/mapper/${snapName}`, chunk * 8 * 512, Buffer.alloc(512, 1));
      } catch {
        // Writes past the space fail with EIO once the snapshot overflowed.
      }
    }
    expect(snapshotType.parseStatus(dm.status(snapName)[0].params)).to.deep.equal({ state: 'Overflow' });
  });

  describe('verity', function () {
    const dataBlocks = 8;

    /** Writes data and a one-level SHA-256 hash tree (format version 1: salt, then block) and returns the root digest. */
    function buildHashTree(dataFile: string, hashFile: string, salt: Buffer): Buffer {
      const data = randomBytes(dataBlocks * VERITY_BLOCK);
      fs.writeFileSync(dataFile, data);
      const hashBlock = Buffer.alloc(VERITY_BLOCK);
      for (let i = 0; i < dataBlocks; i++) {
        const digest = createHash('sha256').update(salt).update(data.subarray(i * VERITY_BLOCK, (i + 1) * VERITY_BLOCK)).digest();
        digest.copy(hashBlock, i * SHA256_BYTES);
      }
      fs.writeFileSync(hashFile, hashBlock);
      return createHash('sha256').update(salt).update(hashBlock).digest();
    }

    it('verity round-trips and detects corruption', async function () {
      const skip = modprobe('dm_verity');
      if (skip) this.skip();
      const salt = randomBytes(32);
      const dataFile = sparseFile('verity-data.img', 0);
      const hashFile = sparseFile('verity-hash.img', 0);
      const rootDigest = buildHashTree(dataFile, hashFile, salt);
      const data = attachLoop(dataFile);
      loops.push(data);
      const hash = attachLoop(hashFile);
      loops.push(hash);
      const params = {
        version: 1 as const,
        dataDevice: data.devString,
        hashDevice: hash.devString,
        dataBlockSize: VERITY_BLOCK,
        hashBlockSize: VERITY_BLOCK,
        dataBlocks: BigInt(dataBlocks),
        hashStartBlock: 0n,
        algorithm: 'sha256',
        rootDigest,
        salt,
        options: [],
      };
      const length = BigInt((dataBlocks * VERITY_BLOCK) / 512);
      expect(await roundTrip(verityType, 'verity', length, params, { readOnly: true })).to.deep.equal({ verified: true });
      writeAt(data.path, 0, Buffer.alloc(VERITY_BLOCK, 0xff));
      expect(() => fs.readFileSync(`/dev/mapper/${testName('verity')}`)).to.throw(/EIO|I\/O/);
      expect(verityType.parseStatus(dm.status(testName('verity'))[0].params)).to.deep.equal({ verified: false });
    });
  });

  it('cache round-trips', async function () {
    const skip = modprobe('dm_cache_smq') ?? modprobe('dm_cache');
    if (skip) this.skip();
    const metadata = loop('cache-meta.img', 4 * MiB);
    const fast = loop('cache-fast.img', 4 * MiB);
    const origin = loop('cache-origin.img', 16 * MiB);
    const params = {
      metadataDevice: metadata.devString,
      cacheDevice: fast.devString,
      originDevice: origin.devString,
      blockSize: sectors(128),
      ioMode: 'writethrough' as const,
      policy: 'smq',
      policyArgs: [],
    };
    const status = await roundTrip(cacheType, 'cache', 32768n, params);
    expect(status).to.deep.include({ state: 'ok', cacheBlockSize: 128n, totalCacheBlocks: 64n, policy: 'smq', mode: 'rw', needsCheck: false });
  });

  it('writecache round-trips', async function () {
    const skip = modprobe('dm_writecache');
    if (skip) this.skip();
    const origin = loop('wc-origin.img', 4 * MiB);
    const fast = loop('wc-fast.img', 2 * MiB);
    const params = { mode: 's' as const, originDevice: origin.devString, cacheDevice: fast.devString, blockSize: 4096, options: { autocommitTimeMs: 500, cleaner: true as const } };
    const status = await roundTrip(writecacheType, 'writecache', 8192n, params);
    expect(status.error).to.equal(0);
    expect(status.stats?.reads).to.equal(0n);
  });

  it('mirror round-trips', async function () {
    const skip = modprobe('dm_mirror');
    if (skip) this.skip();
    const a = loop('mirror-a.img', MiB);
    const b = loop('mirror-b.img', MiB);
    const params = {
      log: { type: 'core' as const, regionSize: sectors(1024), sync: 'nosync' as const },
      mirrors: [{ device: a.devString, offset: sectors(0) }, { device: b.devString, offset: sectors(0) }],
      features: ['handle_errors' as const],
    };
    const status = await roundTrip(mirrorType, 'mirror', 2048n, params);
    expect(status).to.deep.equal({ devices: [a.devString, b.devString], inSyncRegions: 2n, totalRegions: 2n, health: ['A', 'A'], log: ['core'] });
  });
});
