// How openDeviceMapper chooses between udev cookies and the library's own
// nodes: udev's control socket, System V semaphores, DM_DISABLE_UDEV, and
// the caller's `udev` and `overrideUdevSyncCheck` options.

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';

import { expect } from 'chai';

import { openDeviceMapper } from '../../src/index.js';
import { DmError } from '../../src/ioctl/errors.js';
import { UdevErrorCode } from '../../src/udev/cookie.js';
import { createNodeSync, inspectUdev, type UdevSyncOptions } from '../../src/udev/detect.js';
import type { UdevWarning } from '../../src/udev/logger.js';
import { DIRECT_UDEV_FLAGS, DirectNodes } from '../../src/udev/nodes.js';
import { UdevCookieSync } from '../../src/udev/sync.js';
import { FakeKernel, makeTempDir } from './fake-kernel.js';
import { TrackingSysv } from './udev-fakes.js';

const { ENOSYS } = osConstants.errno;

describe('udev mode choice', function () {
  let dir: string;
  let controlPath: string;
  let sem: TrackingSysv;
  let warnings: UdevWarning[];

  function options(extra: Partial<UdevSyncOptions> = {}): UdevSyncOptions {
    return { udevControlPath: controlPath, sysv: sem, env: {}, nodeDir: dir, udevLogger: { warn: (w) => warnings.push(w) }, ...extra };
  }

  function startUdev(): void {
    fs.writeFileSync(controlPath, '');
  }

  beforeEach(function () {
    dir = makeTempDir('detect');
    controlPath = path.join(dir, 'control');
    sem = new TrackingSysv();
    warnings = [];
  });

  afterEach(function () {
    sem.cleanUp();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('no udev means direct nodes', function () {
    expect(createNodeSync(options())).to.be.instanceOf(DirectNodes);
    expect(inspectUdev(options())).to.deep.equal({ udevRunning: false, semaphoreProblem: undefined, disabledByEnv: false });
  });

  it('running udev means cookies', function () {
    startUdev();
    expect(createNodeSync(options())).to.be.instanceOf(UdevCookieSync);
    expect(warnings).to.deep.equal([]);
  });

  it('DM_DISABLE_UDEV bypasses running udev', function () {
    startUdev();
    expect(createNodeSync(options({ env: { DM_DISABLE_UDEV: '' } }))).to.be.instanceOf(DirectNodes);
    expect(warnings.map((w) => w.code)).to.deep.equal(['DM_UDEV_BYPASSED']);
    expect(warnings[0].message).to.contain('DM_DISABLE_UDEV');
  });

  it('udev without semaphores is rejected', function () {
    startUdev();
    sem.failures.set('SEM_INFO', ENOSYS);
    sem.failures.set('semget', ENOSYS);
    let error: unknown;
    try {
      createNodeSync(options());
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(DmError);
    expect((error as DmError).code).to.equal(UdevErrorCode.SYNC_UNSUPPORTED);
    expect((error as DmError).message).to.contain('semctl(SEM_INFO) failed with ENOSYS');
    expect((error as DmError).message).to.contain('overrideUdevSyncCheck');
  });

  it('override falls back to direct nodes', function () {
    startUdev();
    sem.failures.set('SEM_INFO', ENOSYS);
    expect(createNodeSync(options({ overrideUdevSyncCheck: true }))).to.be.instanceOf(DirectNodes);
    expect(warnings.map((w) => w.code)).to.deep.equal(['DM_UDEV_BYPASSED']);
  });

  it('forced direct ignores running udev', function () {
    startUdev();
    expect(createNodeSync(options({ udev: 'direct' }))).to.be.instanceOf(DirectNodes);
    expect(sem.semgetCalls).to.equal(0);
  });

  it('forced cookies without udev', function () {
    const sync = createNodeSync(options({ udev: 'cookie', udevWaitTimeoutMs: 5 }));
    expect(sync).to.be.instanceOf(UdevCookieSync);
    expect((sync as UdevCookieSync).timeoutMs).to.equal(5);
  });

  it('forced cookies need semaphores', function () {
    sem.failures.set('SEM_INFO', ENOSYS);
    expect(() => createNodeSync(options({ udev: 'cookie' }))).to.throw(DmError, /Udev cookies were requested/);
  });

  it('direct mode never touches semaphores', async function () {
    // Input 2 of the container case: no udev, no semget, event_nr without a cookie.
    const kernel = new FakeKernel();
    const dm = openDeviceMapper({ controlPath: '/dev/null', libc: kernel, ...options() });
    try {
      dm.create('c1');
      dm.load('c1', [{ start: 0n, length: 2048n, type: 'zero', params: '' }]);
      const info = await dm.resume('c1');
      expect(info.nodeSync).to.equal('direct');
      expect(sem.semgetCalls).to.equal(0);
      expect(kernel.calls('DM_DEV_SUSPEND')[0].header.eventNr).to.equal(DIRECT_UDEV_FLAGS << 16);
      expect(DIRECT_UDEV_FLAGS).to.equal(0x43);
      expect(kernel.mknodCalls.map((call) => [call.path, call.dev])).to.deep.equal([[path.join(dir, 'c1'), 0xfd00n]]);
    } finally {
      dm.close();
    }
  });

  it('nodeSync option replaces the choice', function () {
    startUdev();
    sem.failures.set('SEM_INFO', ENOSYS);
    const kernel = new FakeKernel();
    // No SYNC_UNSUPPORTED: the caller's own NodeSync is used as it is.
    const dm = openDeviceMapper({ controlPath: '/dev/null', libc: kernel, nodeSync: new DirectNodes({ dir }), ...options(), udevControlPath: controlPath });
    dm.close();
  });
});
