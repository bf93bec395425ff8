// The driver registry's choice: DOCKER_DRIVER, prior state, priority, and
// which init failures are skipped. The drivers are the real vfs and aufs
// drivers plus recording drivers whose init outcome each test sets.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { expect } from 'chai';

import {
  AufsDriver,
  DriverRegistry,
  GraphDriverErrorCode,
  VfsDriver,
  driverError,
  type Driver,
  type InitFunction,
} from '../../src/graphdriver/index.js';

function tempRoot(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'gd-registry-'));
}

async function rejection(promise: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}

describe('graphdriver registry', function () {
  let root: string;
  let tried: string[];
  let noAufs: string;

  /** Builds a devicemapper stand-in that records the attempt, then fails with `failure` or starts a renamed vfs driver. */
  function recording(name: string, failure?: Error): InitFunction {
    return async (driverRoot, config) => {
      tried.push(name);
      if (failure) throw failure;
      return VfsDriver.init(driverRoot, config).then((driver) => Object.assign(driver, { proto: Object.assign(driver.proto, { name }) }) as Driver);
    };
  }

  function registry(devicemapper: InitFunction): DriverRegistry {
    const result = new DriverRegistry();
    result.register('aufs', async (driverRoot, config) => {
      tried.push('aufs');
      return AufsDriver.init(driverRoot, { ...config, procFilesystems: noAufs });
    });
    result.register('devicemapper', devicemapper);
    result.register('vfs', async (driverRoot, config) => {
      tried.push('vfs');
      return VfsDriver.init(driverRoot, config);
    });
    return result;
  }

  beforeEach(function () {
    root = tempRoot();
    tried = [];
    noAufs = path.join(root, 'filesystems');
    fs.writeFileSync(noAufs, 'nodev\tsysfs\nnodev\tproc\n\text4\n');
  });

  afterEach(function () {
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('priority skips unsupported aufs', async function () {
    const driver = await registry(recording('devicemapper')).newDriver(root, { env: {} });
    expect(driver.name).to.equal('devicemapper');
    expect(tried).to.deep.equal(['aufs', 'devicemapper']);
  });

  it('empty DOCKER_DRIVER uses priority', async function () {
    const driver = await registry(recording('devicemapper')).newDriver(root, { env: { DOCKER_DRIVER: '' } });
    expect(driver.name).to.equal('devicemapper');
  });

  it('unknown DOCKER_DRIVER rejects without fallback', async function () {
    const error = await rejection(registry(recording('devicemapper')).newDriver(root, { env: { DOCKER_DRIVER: 'overlay' } }));
    expect(error.code).to.equal(GraphDriverErrorCode.NO_SUCH_DRIVER);
    expect(error.message).to.match(/^No such driver: overlay/);
    expect(tried).to.deep.equal([]);
  });

  it('named driver failure is not replaced', async function () {
    const broken = driverError('EACCES', 'Opening /dev/mapper/control failed');
    const error = await rejection(registry(recording('devicemapper', broken)).newDriver(root, { env: { DOCKER_DRIVER: 'devicemapper' } }));
    expect(error.code).to.equal('EACCES');
    expect(tried).to.deep.equal(['devicemapper']);
  });

  it('broken devicemapper never becomes vfs', async function () {
    const broken = driverError('ERR_DM_LOOP_ATTACH_FAILED', 'Attaching the data file failed');
    const error = await rejection(registry(recording('devicemapper', broken)).newDriver(root, { env: {} }));
    expect(error.code).to.equal('ERR_DM_LOOP_ATTACH_FAILED');
    expect(tried).to.deep.equal(['aufs', 'devicemapper']);
  });

  it('unsupported devicemapper falls to vfs', async function () {
    const unsupported = driverError(GraphDriverErrorCode.NOT_SUPPORTED, 'No device-mapper here');
    const driver = await registry(recording('devicemapper', unsupported)).newDriver(root, { env: {} });
    expect(driver.name).to.equal('vfs');
    expect(tried).to.deep.equal(['aufs', 'devicemapper', 'vfs']);
  });

  it('prior vfs state wins over priority', async function () {
    await registry(recording('devicemapper')).newDriver(root, { env: { DOCKER_DRIVER: 'vfs' } });
    tried = [];
    const driver = await registry(recording('devicemapper')).newDriver(root, { env: {} });
    expect(driver.name).to.equal('vfs');
    expect(tried).to.deep.equal(['vfs']);
  });

  it('failing prior driver is named', async function () {
    fs.mkdirSync(path.join(root, 'devicemapper', 'metadata'), { recursive: true });
    const broken = driverError('ENOENT', 'loopback mounting failed');
    const error = await rejection(registry(recording('devicemapper', broken)).newDriver(root, { env: {} }));
    expect(error.message).to.equal(`Prior storage driver devicemapper failed in ${root}: loopback mounting failed`);
    expect(tried).to.deep.equal(['devicemapper']);
  });

  it('several prior drivers need a choice', async function () {
    fs.mkdirSync(path.join(root, 'aufs', 'diff'), { recursive: true });
    fs.mkdirSync(path.join(root, 'devicemapper', 'metadata'), { recursive: true });
    const error = await rejection(registry(recording('devicemapper')).newDriver(root, { env: {} }));
    expect(error.code).to.equal(GraphDriverErrorCode.AMBIGUOUS_PRIOR_STATE);
    expect(error.message).to.contain('aufs, devicemapper');
  });

  it('explicit priority overrides the default', async function () {
    const driver = await registry(recording('devicemapper')).newDriver(root, { env: {}, priority: ['vfs', 'devicemapper'] });
    expect(driver.name).to.equal('vfs');
  });

  it('aufs initializes where the kernel lists it', async function () {
    const withAufs = path.join(root, 'filesystems-aufs');
    fs.writeFileSync(withAufs, 'nodev\tproc\nnodev\taufs\n');
    const driver = await AufsDriver.init(root, { procFilesystems: withAufs });
    await driver.create('layer1');
    await driver.create('layer2', 'layer1');
    expect(driver.name).to.equal('aufs');
    expect(driver.parent('layer2')).to.equal('layer1');
    expect(fs.readFileSync(path.join(root, 'aufs', 'layers', 'layer2'), 'utf8')).to.equal('layer1\n');
  });

  it('duplicate registration is rejected', function () {
    const result = registry(recording('devicemapper'));
    expect(() => result.register('vfs', recording('vfs'))).to.throw(/already registered/);
  });
});
