// The DeviceMapper client against the real kernel.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { expect } from 'chai';

import { DeviceMapper, DmError, DmErrorCode, openDeviceMapper, sectors, ThinPool, type DeviceInfo, type MissingDevice } from '../../src/index.js';
import { countingLibc, leftoverDevices, testName, workFile } from './helpers.js';

const SECTORS = 2048n;

/** Asserts that `info` describes an existing device and narrows its type. */
function present(info: DeviceInfo | MissingDevice): DeviceInfo {
  if (!info.exists) expect.fail(`device ${info.name ?? info.uuid} does not exist`);
  return info;
}

function zeroTable(length = SECTORS) {
  return [{ start: 0n, length, type: 'zero', params: '' }];
}

async function expectRejection(promise: Promise<unknown>): Promise<DmError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(DmError);
    return error as DmError;
  }
  throw new Error('expected a rejection');
}

function expectThrow(action: () => unknown): DmError {
  try {
    action();
  } catch (error) {
    expect(error).to.be.instanceOf(DmError);
    return error as DmError;
  }
  throw new Error('expected an exception');
}

describe('DeviceMapper on the kernel', function () {
  let dm: DeviceMapper;

  beforeEach(function () {
    dm = openDeviceMapper();
  });

  afterEach(async function () {
    for (const name of leftoverDevices(dm)) await dm.remove(name, { ignoreMissing: true });
    dm.close();
  });

  it('version returns interface 4.x', function () {
    const [major, minor] = dm.version();
    expect(major).to.equal(4);
    expect(minor).to.be.at.least(27);
  });

  it('listVersions includes the thin targets', function () {
    const names = dm.listVersions().map((t) => t.name);
    for (const target of ['linear', 'zero', 'error', 'thin-pool', 'thin']) expect(names).to.include(target);
  });

  it('create, info and remove a device with a uuid', async function () {
    const name = testName('create');
    const created = dm.create(name, { uuid: `${name}-uuid` });
    expect(created.name).to.equal(name);
    expect(created.liveTable).to.equal(false);
    const info = dm.info(name);
    expect(info.exists).to.equal(true);
    if (!info.exists) return;
    expect(info.uuid).to.equal(`${name}-uuid`);
    expect(info.major).to.be.greaterThan(0);
    const byUuid = dm.info({ uuid: `${name}-uuid` });
    expect(present(byUuid).name).to.equal(name);
    await dm.remove(name);
    expect(dm.info(name).exists).to.equal(false);
  });

  it('create of an existing name fails with EBUSY naming it', function () {
    const name = testName('twice');
    dm.create(name);
    const error = expectThrow(() => dm.create(name));
    expect(error.code).to.equal('EBUSY');
    expect(error.device).to.equal(name);
    expect(error.command).to.equal('DM_DEV_CREATE');
    expect(error.message).to.contain(name);
  });

  it('remove of a missing device fails with ENXIO', async function () {
    const name = testName('missing');
    const error = await expectRejection(dm.remove(name));
    expect(error.code).to.equal('ENXIO');
    expect(error.errno).to.equal(6);
    expect(error.notFound).to.equal(true);
    expect(error.device).to.equal(name);
    await dm.remove(name, { ignoreMissing: true });
  });

  it('info of a missing device reports exists false', function () {
    expect(dm.info(testName('nope'))).to.deep.equal({ exists: false, name: testName('nope') });
  });

  it('invalid table fails with EINVAL and the line', function () {
    const name = testName('badtable');
    dm.create(name);
    const error = expectThrow(() => dm.load(name, [{ start: 0n, length: 100n, type: 'linear', params: 'only-one-argument' }]));
    expect(error.code).to.equal('EINVAL');
    expect(error.command).to.equal('DM_TABLE_LOAD');
    expect(error.message).to.contain('0 100 linear only-one-argument');
  });

  it('table over a missing device fails with ENODEV', function () {
    const name = testName('nodev');
    dm.create(name);
    const error = expectThrow(() => dm.load(name, [{ start: 0n, length: 100n, type: 'linear', params: '/dev/no-such-device 0' }]));
    expect(error.code).to.equal('ENODEV');
    expect(error.message).to.contain('/dev/no-such-device');
  });

  it('name of 128 bytes is rejected before any ioctl', function () {
    const libc = countingLibc();
    const counted = DeviceMapper.open({ libc });
    try {
      const before = libc.ioctls;
      const error = expectThrow(() => counted.create('a'.repeat(128)));
      expect(error.code).to.equal(DmErrorCode.INVALID_NAME);
      expect(libc.ioctls).to.equal(before);
      expect(expectThrow(() => counted.create('é'.repeat(64))).code).to.equal(DmErrorCode.INVALID_NAME);
      for (const bad of ['', '.', '..', 'control', 'a/b']) {
        expect(expectThrow(() => counted.create(bad)).code).to.equal(DmErrorCode.INVALID_NAME);
      }
      expect(libc.ioctls).to.equal(before);
    } finally {
      counted.close();
    }
  });

  it('name of 127 bytes is accepted', async function () {
    const name = testName('x').padEnd(127, 'x');
    dm.create(name);
    expect(dm.info(name).exists).to.equal(true);
    await dm.remove(name);
  });

  it('createDevice makes a live device and its node', async function () {
    const name = testName('zero');
    const info = await dm.createDevice(name, { table: zeroTable() });
    expect(info.liveTable).to.equal(true);
    expect(info.suspended).to.equal(false);
    const stat = fs.statSync(`/dev/mapper/${name}`);
    expect(stat.isBlockDevice()).to.equal(true);
    const bytes = Buffer.alloc(4096, 0xff);
    const fd = fs.openSync(`/dev/mapper/${name}`, 'r');
    try {
      fs.readSync(fd, bytes, 0, bytes.length, 0);
    } finally {
      fs.closeSync(fd);
    }
    expect(bytes.every((b) => b === 0)).to.equal(true);
    await dm.remove(name);
    expect(fs.existsSync(`/dev/mapper/${name}`)).to.equal(false);
  });

  it('createDevice removes the device when the load fails', async function () {
    const name = testName('rollback');
    const error = await expectRejection(
      dm.createDevice(name, { table: [{ start: 0n, length: 8n, type: 'linear', params: '0:0 0' }] }),
    );
    expect(error.message).to.contain('DM_TABLE_LOAD');
    expect(dm.info(name).exists).to.equal(false);
  });

  it('table and status read back what was loaded', async function () {
    const name = testName('table');
    await dm.createDevice(name, {
      table: [
        { start: 0n, length: 1000n, type: 'zero', params: '' },
        { start: 1000n, length: 24n, type: 'error', params: '' },
      ],
    });
    const table = dm.table(name);
    expect(table.map((t) => [t.start, t.length, t.type])).to.deep.equal([
      [0n, 1000n, 'zero'],
      [1000n, 24n, 'error'],
    ]);
    const status = dm.status(name);
    expect(status).to.have.length(2);
    expect(status[0].type).to.equal('zero');
  });

  it('linear over another device maps its sectors', async function () {
    const lower = testName('lower');
    const upper = testName('upper');
    const lowerInfo = await dm.createDevice(lower, { table: zeroTable() });
    await dm.createDevice(upper, {
      table: [{ start: 0n, length: 1024n, type: 'linear', params: `${lowerInfo.major}:${lowerInfo.minor} 512` }],
    });
    expect(dm.table(upper)[0].params).to.equal(`${lowerInfo.major}:${lowerInfo.minor} 512`);
    expect(dm.deps(upper)).to.deep.equal([{ major: lowerInfo.major, minor: lowerInfo.minor }]);
    const error = await expectRejection(dm.remove(lower));
    expect(error.code).to.equal('EBUSY');
    expect(error.message).to.contain('open count 1');
    await dm.remove(upper);
    await dm.remove(lower);
  });

  it('suspend and resume set the suspended flag', async function () {
    const name = testName('suspend');
    await dm.createDevice(name, { table: zeroTable() });
    expect(dm.suspend(name).suspended).to.equal(true);
    const info = dm.info(name);
    expect(present(info).suspended).to.equal(true);
    expect((await dm.resume(name)).suspended).to.equal(false);
  });

  it('load into a live device waits as the inactive table', async function () {
    const name = testName('reload');
    await dm.createDevice(name, { table: zeroTable() });
    const loaded = dm.load(name, zeroTable(4096n));
    expect(loaded.inactiveTable).to.equal(true);
    expect(dm.table(name, { inactive: true })[0].length).to.equal(4096n);
    expect(dm.table(name)[0].length).to.equal(SECTORS);
    dm.suspend(name);
    await dm.resume(name);
    expect(dm.table(name)[0].length).to.equal(4096n);
    expect(dm.clear(name).inactiveTable).to.equal(false);
  });

  it('read-only create and load set the flag', async function () {
    const name = testName('ro');
    const info = await dm.createDevice(name, { table: zeroTable(), readOnly: true });
    expect(info.readOnly).to.equal(true);
  });

  it('listDevices reports names, uuids and event numbers', async function () {
    const name = testName('list');
    await dm.createDevice(name, { table: zeroTable(), uuid: `${name}-uuid` });
    const entry = dm.listDevices().find((d) => d.name === name);
    expect(entry).to.not.equal(undefined);
    const info = dm.info(name);
    if (!entry || !info.exists) return;
    expect(entry.dev > 0n).to.equal(true);
    expect(entry.eventNr).to.equal(info.eventNr);
    if (dm.version()[1] >= 46) expect(entry.uuid).to.equal(`${name}-uuid`);
  });

  it('listDevices grows its buffer for many devices', async function () {
    const small = DeviceMapper.open({ initialBufferSize: 1024 });
    try {
      const names = Array.from({ length: 40 }, (_, i) => testName(`many-${String(i).padStart(3, '0')}-${'n'.repeat(40)}`));
      for (const name of names) small.create(name);
      const listed = small.listDevices().map((d) => d.name);
      for (const name of names) expect(listed).to.include(name);
    } finally {
      small.close();
    }
  });

  it('buffer limit ends in a clear error', function () {
    const tiny = DeviceMapper.open({ initialBufferSize: 512, maxBufferSize: 1024 });
    try {
      for (let i = 0; i < 20; i++) tiny.create(testName(`limit-${i}-${'n'.repeat(60)}`));
      const error = expectThrow(() => tiny.listDevices());
      expect(error.code).to.equal(DmErrorCode.BUFFER_LIMIT);
      expect(error.message).to.contain('maxBufferSize 1024');
    } finally {
      tiny.close();
    }
  });

  it('rename moves the device and its node', async function () {
    const name = testName('rename-a');
    const renamed = testName('rename-b');
    await dm.createDevice(name, { table: zeroTable() });
    await dm.rename(name, renamed);
    expect(dm.info(name).exists).to.equal(false);
    expect(dm.info(renamed).exists).to.equal(true);
    expect(fs.existsSync(`/dev/mapper/${name}`)).to.equal(false);
    expect(fs.statSync(`/dev/mapper/${renamed}`).isBlockDevice()).to.equal(true);
  });

  it('remove by uuid removes the node by name', async function () {
    const name = testName('byuuid');
    await dm.createDevice(name, { table: zeroTable(), uuid: `${name}-uuid` });
    await dm.remove({ uuid: `${name}-uuid` });
    expect(dm.info(name).exists).to.equal(false);
    expect(fs.existsSync(`/dev/mapper/${name}`)).to.equal(false);
  });

  it('message to a target without messages fails with EINVAL', async function () {
    const name = testName('msg');
    await dm.createDevice(name, { table: zeroTable() });
    const error = expectThrow(() => dm.message(name, 0, 'hello'));
    expect(error.code).to.equal('EINVAL');
    expect(error.message).to.contain('"hello"');
  });

  it('closed handle rejects calls', function () {
    const closed = openDeviceMapper();
    closed.close();
    expect(expectThrow(() => closed.version()).code).to.equal(DmErrorCode.CLOSED);
  });

  it('recreates a missing control node', function () {
    if (process.env.DM_TEST_HOST) this.skip();
    fs.rmSync('/dev/mapper/control');
    const fresh = openDeviceMapper();
    try {
      expect(fresh.version()[0]).to.equal(4);
      const stat = fs.statSync('/dev/mapper/control');
      expect(stat.isCharacterDevice()).to.equal(true);
    } finally {
      fresh.close();
    }
  });
});

describe('DeviceMapper commands on the kernel', function () {
  let dm: DeviceMapper;

  /** Creates a pool whose low water mark equals its size, so the first block written raises a dm event. */
  async function lowWaterPool(suffix: string): Promise<ThinPool> {
    return ThinPool.create(dm, {
      name: testName(`pool-${suffix}`),
      dataFile: workFile(`${suffix}-data.img`),
      metadataFile: workFile(`${suffix}-meta.img`),
      dataSize: 64 * 1024 * 1024,
      metadataSize: 4 * 1024 * 1024,
      lowWaterMark: 1024n,
    });
  }

  async function writeToNewThin(pool: ThinPool, suffix: string): Promise<void> {
    pool.createThin(1);
    const name = testName(suffix);
    await pool.activateThin(name, 1, sectors(8192n));
    const fd = fs.openSync(`/dev/mapper/${name}`, 'r+');
    try {
      fs.writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 0);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  beforeEach(function () {
    dm = openDeviceMapper();
  });

  afterEach(async function () {
    for (const name of leftoverDevices(dm)) await dm.remove(name, { ignoreMissing: true });
    dm.close();
  });

  it('rename by uuid renames the device', async function () {
    const name = testName('ren-uuid');
    await dm.createDevice(name, { table: zeroTable(), uuid: `${name}-uuid` });
    await dm.rename({ uuid: `${name}-uuid` }, testName('ren-uuid-new'));
    expect(dm.info(testName('ren-uuid-new')).exists).to.equal(true);
    expect(fs.existsSync(`/dev/mapper/${testName('ren-uuid-new')}`)).to.equal(true);
  });

  it('create with a minor above 255', async function () {
    const name = testName('minor');
    const info = dm.create(name, { minor: 300 });
    expect(info.minor).to.equal(300);
  });

  it('message returns the target reply', async function () {
    const name = testName('stats');
    await dm.createDevice(name, { table: zeroTable() });
    expect(dm.message(name, 0, '@stats_create - /1')).to.equal('0');
    expect(dm.message(name, 0, '@stats_list')).to.match(/^0: 0\+2048 2048/);
    expect(dm.message(name, 0, '@stats_delete 0')).to.equal(undefined);
  });

  it('secure load and nolockfs suspend work', async function () {
    const name = testName('secure');
    dm.create(name);
    expect(dm.load(name, zeroTable(), { secure: true }).inactiveTable).to.equal(true);
    await dm.resume(name);
    expect(dm.suspend(name, { nolockfs: true, noflush: true }).suspended).to.equal(true);
    expect((await dm.resume(name)).suspended).to.equal(false);
  });

  it('status with noflush and inactive deps', async function () {
    const lower = testName('deps-lower');
    const upper = testName('deps-upper');
    const lowerInfo = await dm.createDevice(lower, { table: zeroTable() });
    await dm.createDevice(upper, { table: zeroTable() });
    dm.load(upper, [{ start: 0n, length: 64n, type: 'linear', params: `${lowerInfo.major}:${lowerInfo.minor} 0` }]);
    expect(dm.deps(upper)).to.deep.equal([]);
    expect(dm.deps(upper, { inactive: true })).to.deep.equal([{ major: lowerInfo.major, minor: lowerInfo.minor }]);
    expect(dm.status(upper, { noflush: true })[0].type).to.equal('zero');
    dm.clear(upper);
  });

  it('unprivileged open fails with EACCES', function () {
    if (process.env.DM_TEST_HOST) this.skip();
    const script = [
      "process.setgid(65534); process.setuid(65534);",
      "import('./dist/src/index.js').then((m) => { try { m.openDeviceMapper(); console.log('opened'); }",
      "catch (e) { console.log(e.code, e.syscall, e.message); } });",
    ].join(' ');
    const output = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(output).to.match(/^EACCES open /);
    expect(output).to.contain('run as root');
  });

  it('targetVersion reports a loaded target', function () {
    const fromList = dm.listVersions().find((t) => t.name === 'thin-pool')?.version;
    expect(dm.targetVersion('thin-pool')).to.deep.equal(fromList);
  });

  it('setUuid gives a device its uuid', async function () {
    const name = testName('setuuid');
    dm.create(name);
    await dm.setUuid(name, `${name}-later`);
    const info = dm.info(name);
    expect(present(info).uuid).to.equal(`${name}-later`);
    const error = await expectRejection(dm.setUuid(name, `${name}-again`));
    expect(error.code).to.equal('EINVAL');
  });

  it('setGeometry is accepted for a live device', async function () {
    const name = testName('geometry');
    await dm.createDevice(name, { table: zeroTable() });
    dm.setGeometry(name, { cylinders: 1, heads: 4, sectors: 16, start: 0 });
    expect(() => dm.setGeometry(name, { cylinders: -1, heads: 4, sectors: 16, start: 0 })).to.throw(DmError, /cylinders -1/);
  });

  it('deferred remove waits for the last opener', async function () {
    const name = testName('deferred');
    await dm.createDevice(name, { table: zeroTable() });
    const fd = fs.openSync(`/dev/mapper/${name}`, 'r');
    try {
      await dm.remove(name, { deferred: true });
      const pending = dm.info(name);
      expect(present(pending).deferredRemove).to.equal(true);
      expect(present(pending).openCount).to.equal(1);
      dm.cancelDeferredRemove(name);
      const cancelled = dm.info(name);
      expect(present(cancelled).deferredRemove).to.equal(false);
      await dm.remove(name, { deferred: true });
    } finally {
      fs.closeSync(fd);
    }
    // The kernel removes the device from a work queue after the last close.
    for (let i = 0; i < 100 && dm.info(name).exists; i++) await sleep(50);
    expect(dm.info(name).exists).to.equal(false);
  });

  it('removeAll removes unused devices', async function () {
    const names = [testName('all-1'), testName('all-2')];
    for (const name of names) await dm.createDevice(name, { table: zeroTable() });
    const removed = dm.removeAll();
    for (const name of names) expect(removed).to.include(name);
    for (const name of names) expect(fs.existsSync(`/dev/mapper/${name}`)).to.equal(false);
  });

  it('waitEvent resolves on a pool low water event', async function () {
    const pool = await lowWaterPool('wait');
    try {
      const before = dm.info(pool.name);
      if (!before.exists) throw new Error('pool missing');
      const waiting = dm.waitEvent(pool.name, before.eventNr, { timeoutMs: 60000 });
      await writeToNewThin(pool, 'wait-thin');
      const after = await waiting;
      expect(after.eventNr).to.be.greaterThan(before.eventNr);
    } finally {
      await pool.destroy();
    }
  });

  it('waitEvent stops on abort', async function () {
    const name = testName('wait-abort');
    const info = await dm.createDevice(name, { table: zeroTable() });
    const controller = new AbortController();
    const waiting = dm.waitEvent(name, info.eventNr, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    try {
      await waiting;
      expect.fail('expected an abort');
    } catch (error) {
      expect((error as Error).name).to.equal('AbortError');
    }
  });

  it('waitEvent times out with a clear error', async function () {
    const name = testName('wait-timeout');
    const info = await dm.createDevice(name, { table: zeroTable() });
    const error = await expectRejection(dm.waitEvent(name, info.eventNr, { timeoutMs: 100 }));
    expect(error.code).to.equal(DmErrorCode.TIMEOUT);
  });

  it('devWait returns once the event number moves', async function () {
    const pool = await lowWaterPool('devwait');
    try {
      const before = dm.info(pool.name);
      if (!before.exists) throw new Error('pool missing');
      const waiting = dm.devWait(pool.name, before.eventNr);
      await writeToNewThin(pool, 'devwait-thin');
      const event = await waiting;
      expect(event.info.eventNr).to.be.greaterThan(before.eventNr);
      expect(event.targets[0].type).to.equal('thin-pool');
    } finally {
      await pool.destroy();
    }
  });

  it('mangles a name with a space', async function () {
    const name = testName('xx yy');
    await dm.createDevice(name, { table: zeroTable() });
    expect(fs.existsSync(`/dev/mapper/${testName('xx\\x20yy')}`)).to.equal(true);
    expect(fs.existsSync(`/dev/mapper/${testName('xx')}`)).to.equal(false);
    expect(dm.listDevices().map((d) => d.name)).to.include(name);
    const info = dm.info(name);
    expect(present(info).name).to.equal(name);
    await dm.remove(name);
    expect(fs.existsSync(`/dev/mapper/${testName('xx\\x20yy')}`)).to.equal(false);
  });

  it('lists 2000 devices through buffer growth', async function () {
    this.timeout(600000);
    const count = 2000;
    const names = Array.from({ length: count }, (_, i) => testName(`bulk-${String(i).padStart(4, '0')}-${'u'.repeat(32)}`));
    for (const name of names) dm.create(name);
    const listed = dm.listDevices().map((d) => d.name);
    for (const name of names) expect(listed.includes(name), name).to.equal(true);
    for (const name of names) await dm.remove(name);
  });
});
