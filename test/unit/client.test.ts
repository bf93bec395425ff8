// The DeviceMapper client against the fake kernel: request bytes, reply
// decoding, buffer growth, retries and error mapping.

import fs from 'node:fs';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import path from 'node:path';

import { expect } from 'chai';

import { DeviceMapper, type DeviceMapperOptions } from '../../src/dm/client.js';
import type { DeviceId, DeviceInfo, TableTarget } from '../../src/dm/types.js';
import { DmErrorCode } from '../../src/ioctl/errors.js';
import { parseThinPoolStatus } from '../../src/targets/thin-pool.js';
import { catchDmError, FakeKernel, Flag, makeTempDir, openFdCount, rejectionOf, type FakeDmCommand } from './fake-kernel.js';

const { EBUSY, EEXIST, EINVAL, ENODATA, ENOTTY } = osConstants.errno;

function openClient(kernel: FakeKernel, options: Omit<DeviceMapperOptions, 'libc'> = {}): DeviceMapper {
  return DeviceMapper.open({ controlPath: '/dev/null', libc: kernel, ...options });
}

function linearTable(length = 100n): TableTarget[] {
  return [{ start: 0n, length, type: 'linear', params: '7:0 0' }];
}

/** info() for a device that must exist. */
function infoOf(dm: DeviceMapper, device: DeviceId): DeviceInfo {
  const info = dm.info(device);
  if (!info.exists) throw new Error(`Device ${JSON.stringify(device)} is missing`);
  return info;
}

describe('DeviceMapper.open', function () {
  it('open reads kernel version', function () {
    const kernel = new FakeKernel({ version: [4, 47, 0] });
    const dm = openClient(kernel);
    expect(dm.version()).to.deep.equal([4, 47, 0]);
    dm.close();
  });

  it('version is asked once', function () {
    const kernel = new FakeKernel();
    const dm = openClient(kernel);
    dm.version();
    dm.version();
    expect(kernel.calls('DM_VERSION')).to.have.length(1);
    dm.close();
  });

  it('open creates missing control node', function () {
    const kernel = new FakeKernel();
    const dir = makeTempDir('control');
    const controlPath = path.join(dir, 'mapper', 'control');
    const dm = openClient(kernel, { controlPath });
    dm.close();
    fs.rmSync(dir, { recursive: true });
    expect(kernel.mknodCalls).to.have.length(1);
    expect(kernel.mknodCalls[0].path).to.equal(controlPath);
    // S_IFCHR | 0600, character device 10:236.
    expect(kernel.mknodCalls[0].mode).to.equal(0o20600);
    expect(kernel.mknodCalls[0].dev).to.equal(0xaecn);
  });

  it('open maps ENXIO to driver unavailable', async function () {
    // open() of a Unix socket fails with ENXIO, as a control node without a
    // device-mapper driver behind it does.
    const dir = makeTempDir('socket');
    const socketPath = path.join(dir, 'control');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      const error = catchDmError(() => openClient(new FakeKernel(), { controlPath: socketPath }));
      expect(error.code).to.equal(DmErrorCode.DRIVER_UNAVAILABLE);
      expect(error.errno).to.equal(6);
      expect(error.message).to.include('modprobe dm_mod');
    } finally {
      server.close();
      fs.rmSync(dir, { recursive: true });
    }
  });

  it('open closes descriptor when DM_VERSION fails', function () {
    const kernel = new FakeKernel();
    kernel.failNext('DM_VERSION', ENOTTY);
    const before = openFdCount();
    const error = catchDmError(() => openClient(kernel));
    expect(error.code).to.equal('ENOTTY');
    expect(openFdCount()).to.equal(before);
  });

  it('open rejects tiny initialBufferSize', function () {
    const error = catchDmError(() => openClient(new FakeKernel(), { initialBufferSize: 100 }));
    expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
  });

  it('open closes descriptor on invalid options', function () {
    const before = openFdCount();
    catchDmError(() => openClient(new FakeKernel(), { initialBufferSize: 100 }));
    expect(openFdCount()).to.equal(before);
  });

  it('open reports unsupported major version', function () {
    const error = catchDmError(() => openClient(new FakeKernel({ version: [5, 0, 0] })));
    expect(error.code).to.equal(DmErrorCode.UNSUPPORTED_BY_KERNEL);
    expect(error.message).to.include('5.0.0');
  });

  it('closed handle rejects calls without ioctl', function () {
    const kernel = new FakeKernel();
    const dm = openClient(kernel);
    dm.close();
    const count = kernel.dmCalls.length;
    expect(catchDmError(() => dm.create('vol')).code).to.equal(DmErrorCode.CLOSED);
    expect(kernel.dmCalls).to.have.length(count);
  });

  it('close twice is harmless', function () {
    const dm = openClient(new FakeKernel());
    dm.close();
    expect(() => dm.close()).to.not.throw();
  });
});

describe('DeviceMapper request headers', function () {
  /** Issues every command the client has, once or more. */
  async function runEveryCommand(dm: DeviceMapper): Promise<void> {
    dm.create('vol', { uuid: 'uuid-vol' });
    dm.load('vol', linearTable());
    dm.clear('vol');
    dm.load('vol', linearTable());
    await dm.resume('vol');
    dm.suspend('vol');
    await dm.resume('vol');
    dm.info('vol');
    dm.status('vol');
    dm.table('vol');
    dm.deps('vol');
    dm.listDevices();
    dm.listVersions();
    dm.message('vol', 0, 'no-op');
    await dm.rename('vol', 'vol2');
    await dm.remove('vol2');
  }

  // libdm's _cmd_data_v4 table: 4.0.0 for the classic commands.
  const minimumVersions: Partial<Record<FakeDmCommand, number[]>> = {
    DM_VERSION: [4, 0, 0],
    DM_DEV_CREATE: [4, 0, 0],
    DM_TABLE_LOAD: [4, 0, 0],
    DM_TABLE_CLEAR: [4, 0, 0],
    DM_DEV_SUSPEND: [4, 0, 0],
    DM_DEV_STATUS: [4, 0, 0],
    DM_TABLE_STATUS: [4, 0, 0],
    DM_TABLE_DEPS: [4, 0, 0],
    DM_LIST_DEVICES: [4, 0, 0],
    DM_LIST_VERSIONS: [4, 1, 0],
    DM_TARGET_MSG: [4, 2, 0],
    DM_DEV_RENAME: [4, 0, 0],
    DM_DEV_REMOVE: [4, 0, 0],
  };

  it('requests carry minimum versions', async function () {
    const kernel = new FakeKernel({ version: [4, 47, 0] });
    const dm = openClient(kernel);
    await runEveryCommand(dm);
    dm.close();
    const issued = [...new Set(kernel.dmCalls.map((call) => call.command))].sort();
    expect(issued).to.deep.equal(Object.keys(minimumVersions).sort());
    for (const call of kernel.dmCalls) {
      expect(call.header.version, call.command).to.deep.equal(minimumVersions[call.command]);
    }
  });

  it('4.27 kernel accepts every request', async function () {
    const kernel = new FakeKernel({ version: [4, 27, 0] });
    const dm = openClient(kernel);
    await runEveryCommand(dm);
    dm.close();
    for (const call of kernel.dmCalls) {
      expect(call.result, call.command).to.equal(0);
    }
  });

  it('fake rejects newer minor version', function () {
    // Guards the test above: a 4.27 kernel must refuse a 4.28 request.
    const kernel = new FakeKernel({ version: [4, 27, 0] });
    const buf = Buffer.alloc(16384);
    buf.writeUInt32LE(4, 0);
    buf.writeUInt32LE(28, 4);
    buf.writeUInt32LE(16384, 12);
    buf.writeUInt32LE(312, 16);
    buf.write('vol', 48);
    expect(kernel.ioctlBuffer(-1, 0xc138fd07, buf)).to.equal(-EINVAL);
    expect(buf.readUInt32LE(4)).to.equal(27);
  });

  it('create header carries name and uuid', function () {
    const kernel = new FakeKernel();
    const dm = openClient(kernel);
    dm.create('vol', { uuid: 'LVM-1' });
    dm.close();
    const [call] = kernel.calls('DM_DEV_CREATE');
    expect(call.request).to.equal(0xc138fd03);
    // DM_DEV_CREATE replies carry no payload, so the buffer is the bare header.
    expect(call.bytes.readUInt32LE(12)).to.equal(312);
    expect(call.bytes.readUInt32LE(16)).to.equal(312);
    expect(call.bytes.readUInt32LE(28)).to.equal(0);
    expect(call.bytes.subarray(48, 52)).to.deep.equal(Buffer.from('vol\0'));
    expect(call.bytes.subarray(176, 182)).to.deep.equal(Buffer.from('LVM-1\0'));
  });

  it('request buffers are unpooled', function () {
    const kernel = new FakeKernel();
    const dm = openClient(kernel);
    dm.create('vol');
    dm.listDevices();
    dm.close();
    for (const call of kernel.dmCalls) {
      expect(call.byteOffset, call.command).to.equal(0);
      expect(call.bufferLength, call.command).to.equal(call.header.dataSize);
    }
  });

  it('lookup by uuid leaves name empty', function () {
    // The kernel rejects a request that names a device both ways.
    const kernel = new FakeKernel();
    kernel.addDevice('vol', { uuid: 'LVM-1' });
    const dm = openClient(kernel);
    expect(infoOf(dm, { uuid: 'LVM-1' }).name).to.equal('vol');
    dm.close();
    const [call] = kernel.calls('DM_DEV_STATUS');
    expect(call.header.name).to.equal('');
    expect(call.header.uuid).to.equal('LVM-1');
  });
});

describe('DeviceMapper create and load', function () {
  let kernel: FakeKernel;
  let dm: DeviceMapper;

  beforeEach(function () {
    kernel = new FakeKernel();
    dm = openClient(kernel);
  });

  afterEach(function () {
    dm.close();
  });

  it('create returns reply info', function () {
    expect(dm.create('vol', { uuid: 'LVM-1' })).to.deep.equal({
      exists: true,
      name: 'vol',
      uuid: 'LVM-1',
      major: 253,
      minor: 0,
      openCount: 0,
      eventNr: 0,
      targetCount: 0,
      suspended: false,
      readOnly: false,
      liveTable: false,
      inactiveTable: false,
      deferredRemove: false,
    });
  });

  it('create with minor sets persistent flag', function () {
    const info = dm.create('vol', { minor: 5 });
    const [call] = kernel.calls('DM_DEV_CREATE');
    expect(call.header.flags & Flag.PERSISTENT_DEV).to.equal(Flag.PERSISTENT_DEV);
    expect(call.bytes.readBigUInt64LE(40)).to.equal(5n);
    expect(info.minor).to.equal(5);
  });

  it('create with minor above 255', function () {
    const info = dm.create('vol', { minor: 300 });
    const [call] = kernel.calls('DM_DEV_CREATE');
    // new_encode_dev(0:300): low minor byte 0x2c, minor bits 8+ at bit 20.
    expect(call.bytes.readBigUInt64LE(40)).to.equal(0x10002cn);
    expect(info.minor).to.equal(300);
  });

  it('create rejects taken name', function () {
    dm.create('vol');
    const error = catchDmError(() => dm.create('vol'));
    expect(error.code).to.equal('EBUSY');
    expect(error.command).to.equal('DM_DEV_CREATE');
  });

  it('load encodes table payload', function () {
    dm.create('vol');
    dm.load('vol', [
      { start: 0n, length: 100n, type: 'linear', params: '7:0 0' },
      { start: 100n, length: 50n, type: 'zero', params: '' },
    ]);
    const [call] = kernel.calls('DM_TABLE_LOAD');
    const payload = call.payload;
    expect(call.header.targetCount).to.equal(2);
    expect(payload.readBigUInt64LE(0)).to.equal(0n);
    expect(payload.readBigUInt64LE(8)).to.equal(100n);
    expect(payload.readUInt32LE(20)).to.equal(48);
    expect(payload.subarray(24, 31)).to.deep.equal(Buffer.from('linear\0'));
    expect(payload.subarray(40, 46)).to.deep.equal(Buffer.from('7:0 0\0'));
    expect(payload.readBigUInt64LE(48)).to.equal(100n);
    expect(payload.readBigUInt64LE(56)).to.equal(50n);
    expect(payload.subarray(72, 77)).to.deep.equal(Buffer.from('zero\0'));
  });

  it('load stages inactive table', function () {
    dm.create('vol');
    const info = dm.load('vol', linearTable());
    expect(info.inactiveTable).to.equal(true);
    expect(kernel.devices.get('vol')?.inactive?.targets).to.deep.equal(linearTable());
  });

  it('load escapes backslashes', function () {
    dm.create('vol');
    dm.load('vol', [{ start: 0n, length: 8n, type: 'linear', params: 'a\\b 0' }]);
    const [call] = kernel.calls('DM_TABLE_LOAD');
    // a \ \ b space 0 NUL
    expect(call.payload.subarray(40, 47).toString('hex')).to.equal('615c5c62203000');
  });

  it('load secure sets secure flag', function () {
    dm.create('vol');
    dm.load('vol', linearTable(), { secure: true });
    expect(kernel.calls('DM_TABLE_LOAD')[0].header.flags & Flag.SECURE_DATA).to.equal(Flag.SECURE_DATA);
  });

  const invalidTables: [string, TableTarget[]][] = [
    ['empty table', []],
    ['gap between targets', [...linearTable(100n), { start: 150n, length: 8n, type: 'zero', params: '' }]],
    ['first target past sector 0', [{ start: 8n, length: 8n, type: 'zero', params: '' }]],
    ['zero length', [{ start: 0n, length: 0n, type: 'zero', params: '' }]],
    ['type with space', [{ start: 0n, length: 8n, type: 'thin pool', params: '' }]],
    ['newline in params', [{ start: 0n, length: 8n, type: 'linear', params: '7:0 0\n' }]],
  ];
  for (const [label, table] of invalidTables) {
    it(`load rejects ${label}`, function () {
      dm.create('vol');
      const error = catchDmError(() => dm.load('vol', table));
      expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
      expect(kernel.calls('DM_TABLE_LOAD')).to.have.length(0);
    });
  }

  it('create readOnly sets bit 0', function () {
    dm.create('vol', { readOnly: true });
    expect(kernel.calls('DM_DEV_CREATE')[0].header.flags & 1).to.equal(1);
  });

  it('load readOnly sets bit 0', function () {
    dm.create('vol');
    dm.load('vol', linearTable(), { readOnly: true });
    expect(kernel.calls('DM_TABLE_LOAD')[0].header.flags & 1).to.equal(1);
  });

  it('load without readOnly clears bit 0', function () {
    dm.create('vol');
    dm.load('vol', linearTable());
    expect(kernel.calls('DM_TABLE_LOAD')[0].header.flags & 1).to.equal(0);
  });

  it('createDevice readOnly reaches load', async function () {
    await dm.createDevice('vol', { table: linearTable(), readOnly: true });
    // libdm's create with a table sends DM_READONLY_FLAG on the load only.
    expect(kernel.calls('DM_DEV_CREATE')[0].header.flags & 1).to.equal(0);
    expect(kernel.calls('DM_TABLE_LOAD')[0].header.flags & 1).to.equal(1);
    expect(infoOf(dm, 'vol').readOnly).to.equal(true);
  });

  it('resume makes table live', async function () {
    dm.create('vol');
    dm.load('vol', linearTable());
    const info = await dm.resume('vol');
    expect(info.liveTable).to.equal(true);
    expect(info.inactiveTable).to.equal(false);
    expect(info.targetCount).to.equal(1);
  });

  it('suspend sends its flags', function () {
    kernel.addDevice('vol', { table: linearTable() });
    const info = dm.suspend('vol', { noflush: true, nolockfs: true });
    const flags = kernel.calls('DM_DEV_SUSPEND')[0].header.flags;
    expect(flags & Flag.SUSPEND).to.equal(Flag.SUSPEND);
    expect(flags & Flag.NOFLUSH).to.equal(Flag.NOFLUSH);
    expect(flags & Flag.SKIP_LOCKFS).to.equal(Flag.SKIP_LOCKFS);
    expect(info.suspended).to.equal(true);
  });
});

describe('DeviceMapper status and lists', function () {
  let kernel: FakeKernel;
  let dm: DeviceMapper;

  beforeEach(function () {
    kernel = new FakeKernel();
  });

  afterEach(function () {
    dm?.close();
  });

  it('info reports device fields', function () {
    kernel.addDevice('other');
    kernel.addDevice('vol', { uuid: 'LVM-1', table: linearTable(), openCount: 2, eventNr: 7 });
    dm = openClient(kernel);
    expect(dm.info('vol')).to.deep.equal({
      exists: true,
      name: 'vol',
      uuid: 'LVM-1',
      major: 253,
      minor: 1,
      openCount: 2,
      eventNr: 7,
      targetCount: 1,
      suspended: false,
      readOnly: false,
      liveTable: true,
      inactiveTable: false,
      deferredRemove: false,
    });
  });

  it('table returns loaded lines', function () {
    const table = [...linearTable(100n), { start: 100n, length: 28n, type: 'zero', params: '' }];
    kernel.addDevice('vol', { table });
    dm = openClient(kernel);
    const targets = dm.table('vol');
    expect(kernel.calls('DM_TABLE_STATUS')[0].header.flags & Flag.STATUS_TABLE).to.equal(Flag.STATUS_TABLE);
    expect(targets).to.deep.equal(table.map((target) => ({ ...target, status: 0 })));
  });

  it('status returns pool status line', function () {
    kernel.addDevice('pool', {
      table: [{ start: 0n, length: 209715200n, type: 'thin-pool', params: '7:1 7:0 128 32768 1 skip_block_zeroing' }],
      statusLines: ['37 1000/524288 1477379/1638400 - rw discard_passdown queue_if_no_space - '],
    });
    dm = openClient(kernel);
    const [target] = dm.status('pool');
    expect(kernel.calls('DM_TABLE_STATUS')[0].header.flags & Flag.STATUS_TABLE).to.equal(0);
    expect(target.params).to.equal('37 1000/524288 1477379/1638400 - rw discard_passdown queue_if_no_space -');
    const status = parseThinPoolStatus(target.params);
    if (status.state !== 'ok') throw new Error(`Pool status is ${status.state}`);
    expect(status.usedDataBlocks).to.equal(1477379n);
  });

  it('status inactive reads staged table', function () {
    const device = kernel.addDevice('vol', { table: linearTable(100n) });
    device.inactive = { targets: linearTable(200n), readOnly: false };
    dm = openClient(kernel);
    const [target] = dm.table('vol', { inactive: true });
    expect(kernel.calls('DM_TABLE_STATUS')[0].header.flags & Flag.QUERY_INACTIVE_TABLE).to.equal(Flag.QUERY_INACTIVE_TABLE);
    expect(target.length).to.equal(200n);
  });

  it('table regrows for 5000 targets', function () {
    const table: TableTarget[] = [];
    for (let i = 0; i < 5000; i++) table.push({ start: BigInt(i * 8), length: 8n, type: 'linear', params: `7:0 ${i * 8}` });
    kernel.addDevice('big', { table });
    dm = openClient(kernel);
    const targets = dm.table('big');
    expect(targets).to.have.length(5000);
    expect(targets[4999]).to.deep.equal({ start: 39992n, length: 8n, status: 0, type: 'linear', params: '7:0 39992' });
    const calls = kernel.calls('DM_TABLE_STATUS');
    expect(calls[0].bufferLength).to.equal(16384);
    for (const call of calls.slice(0, -1)) expect(call.reply.flags & Flag.BUFFER_FULL).to.equal(Flag.BUFFER_FULL);
    expect(calls[calls.length - 1].reply.flags & Flag.BUFFER_FULL).to.equal(0);
  });

  it('deps returns device numbers', function () {
    kernel.addDevice('pool', {
      table: [{ start: 0n, length: 2048n, type: 'thin-pool', params: '7:1 7:0 128 32768 0' }],
    });
    dm = openClient(kernel);
    expect(dm.deps('pool')).to.deep.equal([
      { major: 7, minor: 1 },
      { major: 7, minor: 0 },
    ]);
  });

  it('listVersions returns target types', function () {
    dm = openClient(kernel);
    expect(dm.listVersions()).to.deep.include({ name: 'thin-pool', version: [1, 23, 0] });
  });

  it('listDevices returns uuids on 4.46+', function () {
    kernel.addDevice('a', { uuid: 'U-A', eventNr: 3 });
    kernel.addDevice('b');
    dm = openClient(kernel);
    const entries = dm.listDevices();
    expect(kernel.calls('DM_LIST_DEVICES')[0].header.flags & Flag.UUID).to.equal(Flag.UUID);
    expect(entries).to.deep.equal([
      { name: 'a', dev: 0xfd00n, eventNr: 3, uuid: 'U-A' },
      { name: 'b', dev: 0xfd01n, eventNr: 0 },
    ]);
  });

  it('listDevices omits uuid flag before 4.46', function () {
    kernel.version = [4, 45, 0];
    kernel.addDevice('a', { uuid: 'U-A', eventNr: 3 });
    dm = openClient(kernel);
    const entries = dm.listDevices();
    expect(kernel.calls('DM_LIST_DEVICES')[0].header.flags & Flag.UUID).to.equal(0);
    expect(entries).to.deep.equal([{ name: 'a', dev: 0xfd00n, eventNr: 3 }]);
  });

  it('listDevices reads pre-4.37 records', function () {
    kernel.version = [4, 27, 0];
    kernel.addDevice('a', { eventNr: 3 });
    kernel.addDevice('b');
    dm = openClient(kernel);
    expect(dm.listDevices()).to.deep.equal([
      { name: 'a', dev: 0xfd00n },
      { name: 'b', dev: 0xfd01n },
    ]);
  });

  it('listDevices returns empty list', function () {
    dm = openClient(kernel);
    expect(dm.listDevices()).to.deep.equal([]);
  });

  describe('with 2000 devices', function () {
    // Names as stratisd makes them: 78 bytes, so each record takes 104 bytes
    // and the reply needs 208000 bytes.
    const hex = (seed: string): string => createHash('md5').update(seed).digest('hex');
    const names = Array.from({ length: 2000 }, (_, i) => `pool-${hex('pool')}-thin-fs-${hex(String(i))}`);

    beforeEach(function () {
      for (const name of names) kernel.addDevice(name);
      dm = openClient(kernel);
    });

    it('listDevices returns every entry', function () {
      const entries = dm.listDevices();
      expect(entries).to.have.length(2000);
      expect(entries.map((entry) => entry.name)).to.have.members(names);
    });

    it('listDevices keeps last name intact', function () {
      const entries = dm.listDevices();
      expect(entries[1999].name).to.equal([...names].sort()[1999]);
    });

    it('listDevices grows from 16384 bytes', function () {
      dm.listDevices();
      const calls = kernel.calls('DM_LIST_DEVICES');
      expect(calls.length).to.be.at.most(5);
      expect(calls[0].bufferLength).to.equal(16384);
      for (const call of calls.slice(0, -1)) expect(call.reply.flags & Flag.BUFFER_FULL).to.equal(Flag.BUFFER_FULL);
      expect(calls[calls.length - 1].reply.flags & Flag.BUFFER_FULL).to.equal(0);
    });
  });

  it('endless buffer full hits limit', function () {
    kernel.alwaysBufferFull = true;
    dm = openClient(kernel, { maxBufferSize: 65536 });
    const error = catchDmError(() => dm.listDevices());
    expect(error.code).to.equal(DmErrorCode.BUFFER_LIMIT);
    expect(kernel.calls('DM_LIST_DEVICES').map((call) => call.bufferLength)).to.deep.equal([16384, 32768, 65536]);
  });
});

describe('DeviceMapper remove', function () {
  let kernel: FakeKernel;
  let dm: DeviceMapper;

  beforeEach(function () {
    kernel = new FakeKernel();
    dm = openClient(kernel);
  });

  afterEach(function () {
    dm.close();
  });

  it('remove retries EBUSY then succeeds', async function () {
    kernel.addDevice('thin_dev_1');
    kernel.failNext('DM_DEV_REMOVE', EBUSY, 3);
    await dm.remove('thin_dev_1', { retry: 3, retryDelayMs: 1 });
    expect(kernel.calls('DM_DEV_REMOVE')).to.have.length(4);
    expect(kernel.devices.has('thin_dev_1')).to.equal(false);
  });

  it('remove stops after retry budget', async function () {
    kernel.addDevice('thin_dev_1');
    kernel.failNext('DM_DEV_REMOVE', EBUSY, 3);
    const error = await rejectionOf(dm.remove('thin_dev_1', { retry: 2, retryDelayMs: 1 }));
    expect(error.code).to.equal('EBUSY');
    expect(kernel.calls('DM_DEV_REMOVE')).to.have.length(3);
  });

  it('busy remove reports open count', async function () {
    kernel.addDevice('thin_dev_1', { openCount: 2 });
    const error = await rejectionOf(dm.remove('thin_dev_1', { retry: 3, retryDelayMs: 1 }));
    expect(error.code).to.equal('EBUSY');
    expect(error.errno).to.equal(16);
    expect(error.message).to.include('open count 2');
    expect(error.device).to.equal('thin_dev_1');
    expect(kernel.calls('DM_DEV_REMOVE')).to.have.length(4);
    expect(kernel.calls('DM_DEV_STATUS')).to.have.length(1);
  });

  it('remove without retry tries once', async function () {
    kernel.addDevice('thin_dev_1', { openCount: 1 });
    const error = await rejectionOf(dm.remove('thin_dev_1'));
    expect(error.code).to.equal('EBUSY');
    expect(kernel.calls('DM_DEV_REMOVE')).to.have.length(1);
  });

  it('deferred remove sets bit 17', async function () {
    kernel.addDevice('thin_dev_1', { openCount: 1 });
    await dm.remove('thin_dev_1', { deferred: true });
    expect(kernel.calls('DM_DEV_REMOVE')[0].header.flags & (1 << 17)).to.equal(1 << 17);
    expect(infoOf(dm, 'thin_dev_1').deferredRemove).to.equal(true);
  });

  it('remove by uuid sends uuid only', async function () {
    kernel.addDevice('vol', { uuid: 'LVM-1' });
    await dm.remove({ uuid: 'LVM-1' });
    const [call] = kernel.calls('DM_DEV_REMOVE');
    expect(call.header.name).to.equal('');
    expect(call.header.uuid).to.equal('LVM-1');
    expect(kernel.devices.size).to.equal(0);
  });

  describe('missing device', function () {
    // The kernel reports names it does not know with ENXIO (errno 6).
    it('error carries ENXIO fields', function () {
      const error = catchDmError(() => dm.status('nope'));
      expect(error.code).to.equal('ENXIO');
      expect(error.errno).to.equal(6);
      expect(error.notFound).to.equal(true);
      expect(error.device).to.equal('nope');
      expect(error.command).to.equal('DM_TABLE_STATUS');
      expect(error.syscall).to.equal('ioctl');
    });

    it('info returns exists false', function () {
      expect(dm.info('nope')).to.deep.equal({ exists: false, name: 'nope' });
    });

    it('info by uuid returns exists false', function () {
      expect(dm.info({ uuid: 'U-none' })).to.deep.equal({ exists: false, uuid: 'U-none' });
    });

    it('remove ignoreMissing resolves', async function () {
      await dm.remove('nope', { ignoreMissing: true });
      expect(kernel.calls('DM_DEV_REMOVE')[0].result).to.equal(-6);
    });

    it('remove without ignoreMissing rejects', async function () {
      const error = await rejectionOf(dm.remove('nope'));
      expect(error.code).to.equal('ENXIO');
      expect(error.notFound).to.equal(true);
    });
  });
});

describe('DeviceMapper rename', function () {
  let kernel: FakeKernel;
  let dm: DeviceMapper;

  beforeEach(function () {
    kernel = new FakeKernel();
    dm = openClient(kernel);
  });

  afterEach(function () {
    dm.close();
  });

  it('rename sends NUL-terminated name', async function () {
    kernel.addDevice('old');
    await dm.rename('old', 'new');
    const [call] = kernel.calls('DM_DEV_RENAME');
    expect(call.header.name).to.equal('old');
    expect(call.payload.subarray(0, 4)).to.deep.equal(Buffer.from('new\0'));
    expect([...kernel.devices.keys()]).to.deep.equal(['new']);
  });

  it('rename rejects invalid name before ioctl', async function () {
    kernel.addDevice('old');
    const error = await rejectionOf(dm.rename('old', 'a/b'));
    expect(error.code).to.equal(DmErrorCode.INVALID_NAME);
    expect(kernel.calls('DM_DEV_RENAME')).to.have.length(0);
  });

  it('rename by uuid renames device', async function () {
    kernel.addDevice('old', { uuid: 'LVM-1' });
    await dm.rename({ uuid: 'LVM-1' }, 'new');
    expect([...kernel.devices.keys()]).to.deep.equal(['new']);
  });
});

describe('DeviceMapper message', function () {
  let kernel: FakeKernel;
  let dm: DeviceMapper;

  beforeEach(function () {
    kernel = new FakeKernel();
    kernel.addDevice('pool', {
      table: [{ start: 0n, length: 209715200n, type: 'thin-pool', params: '7:1 7:0 128 32768 1 skip_block_zeroing' }],
    });
    dm = openClient(kernel);
  });

  afterEach(function () {
    dm.close();
  });

  it('message sends sector then text', function () {
    dm.message('pool', 0, 'create_thin 1');
    const [call] = kernel.calls('DM_TARGET_MSG');
    expect(call.header.name).to.equal('pool');
    expect(call.payload.subarray(0, 8).toString('hex')).to.equal('0000000000000000');
    expect(call.payload.subarray(8, 22)).to.deep.equal(Buffer.from('create_thin 1\0'));
  });

  it('message writes sector little-endian', function () {
    dm.message('pool', 2048n, 'x');
    expect(kernel.calls('DM_TARGET_MSG')[0].payload.subarray(0, 8).toString('hex')).to.equal('0008000000000000');
  });

  it('EEXIST keeps errno and command', function () {
    kernel.onMessage = (_device, _sector, message) => (message === 'create_thin 1' ? -EEXIST : undefined);
    const error = catchDmError(() => dm.message('pool', 0, 'create_thin 1'));
    expect(error.code).to.equal('EEXIST');
    expect(error.errno).to.equal(17);
    expect(error.command).to.equal('DM_TARGET_MSG');
    expect(error.device).to.equal('pool');
    expect(error.message).to.include('create_thin 1');
  });

  it('ENODATA keeps errno', function () {
    kernel.onMessage = () => -ENODATA;
    const error = catchDmError(() => dm.message('pool', 0, 'delete 10'));
    expect(error.code).to.equal('ENODATA');
    expect(error.errno).to.equal(61);
  });

  it('message returns target reply', function () {
    kernel.onMessage = () => 'reply text';
    expect(dm.message('pool', 0, 'status')).to.equal('reply text');
  });

  it('message without reply returns undefined', function () {
    expect(dm.message('pool', 0, 'create_thin 1')).to.equal(undefined);
  });

  it('long reply regrows and resends', function () {
    // The kernel runs the message before it finds the reply too long, so the
    // client sends it again with a larger buffer, as libdm does.
    const long = 'r'.repeat(20000);
    kernel.onMessage = () => long;
    expect(dm.message('pool', 0, 'stats')).to.equal(long);
    expect(kernel.calls('DM_TARGET_MSG').map((call) => call.bufferLength)).to.deep.equal([16384, 32768]);
  });

  it('empty message fails before ioctl', function () {
    const error = catchDmError(() => dm.message('pool', 0, ''));
    expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
    expect(kernel.calls('DM_TARGET_MSG')).to.have.length(0);
  });
});

describe('DeviceMapper state after errors', function () {
  let kernel: FakeKernel;
  let dm: DeviceMapper;

  beforeEach(function () {
    kernel = new FakeKernel();
    dm = openClient(kernel);
  });

  afterEach(function () {
    dm.close();
  });

  it('load works after failed load', function () {
    dm.create('vol');
    kernel.failNext('DM_TABLE_LOAD', EINVAL);
    expect(catchDmError(() => dm.load('vol', linearTable())).code).to.equal('EINVAL');
    expect(dm.load('vol', linearTable()).inactiveTable).to.equal(true);
  });

  it('load error names the table', function () {
    dm.create('vol');
    kernel.failNext('DM_TABLE_LOAD', EINVAL);
    const error = catchDmError(() => dm.load('vol', linearTable()));
    expect(error.message).to.include('0 100 linear 7:0 0');
  });

  it('list works after buffer limit', function () {
    kernel.addDevice('vol');
    kernel.alwaysBufferFull = true;
    const small = openClient(kernel, { maxBufferSize: 65536 });
    catchDmError(() => small.listDevices());
    kernel.alwaysBufferFull = false;
    expect(small.listDevices().map((entry) => entry.name)).to.deep.equal(['vol']);
    small.close();
  });

  it('createDevice removes device when load fails', async function () {
    kernel.failNext('DM_TABLE_LOAD', EINVAL);
    const error = await rejectionOf(dm.createDevice('vol', { table: linearTable() }));
    expect(error.code).to.equal('EINVAL');
    expect(error.message).to.include('DM_TABLE_LOAD');
    expect(kernel.calls('DM_DEV_REMOVE')).to.have.length(1);
    expect(kernel.devices.has('vol')).to.equal(false);
  });

  it('createDevice removes device when resume fails', async function () {
    kernel.failNext('DM_DEV_SUSPEND', EINVAL);
    const error = await rejectionOf(dm.createDevice('vol', { table: linearTable() }));
    expect(error.message).to.include('DM_DEV_SUSPEND (resume)');
    expect(kernel.devices.has('vol')).to.equal(false);
  });

  it('createDevice keeps existing device', async function () {
    kernel.addDevice('vol', { table: linearTable() });
    const error = await rejectionOf(dm.createDevice('vol', { table: linearTable() }));
    expect(error.code).to.equal('EBUSY');
    expect(kernel.calls('DM_DEV_REMOVE')).to.have.length(0);
    expect(kernel.devices.has('vol')).to.equal(true);
  });
});

