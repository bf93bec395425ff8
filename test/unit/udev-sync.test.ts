// UdevCookieSync behind the dm client, with the fake kernel in place of the
// kernel and a fake udev that completes the real semaphores. Every path
// (udev completes, no uevent, timeout, abort, ioctl failure, an exception,
// a retry loop) must end with the cookie removed and the event loop free.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

import { DeviceMapper } from '../../src/dm/client.js';
import type { TableTarget } from '../../src/dm/types.js';
import type { DmIoctlHeader } from '../../src/ioctl/codec.js';
import { DmError } from '../../src/ioctl/errors.js';
import type { Libc } from '../../src/ioctl/libc.js';
import { completeCookie, UdevErrorCode } from '../../src/udev/cookie.js';
import type { UdevWarning } from '../../src/udev/logger.js';
import { COOKIE_UDEV_FLAGS, DEFAULT_UDEV_WAIT_TIMEOUT_MS, UdevCookieSync } from '../../src/udev/sync.js';
import { FakeKernel, Flag, makeTempDir, rejectionOf } from './fake-kernel.js';
import { CompletingUdev, TrackingSysv, withUevents } from './udev-fakes.js';

const { EBUSY, EINVAL, ENXIO, EPERM } = osConstants.errno;
const zeroTable: TableTarget[] = [{ start: 0n, length: 8n, type: 'zero', params: '' }];
/** A reply whose flags report a uevent; finish() reads only the flags. */
const ueventReply = { flags: Flag.UEVENT_GENERATED } as DmIoctlHeader;

describe('UdevCookieSync', function () {
  let dir: string;
  let kernel: FakeKernel;
  let sem: TrackingSysv;
  let udev: CompletingUdev;
  let warnings: UdevWarning[];
  let dm: DeviceMapper;

  function open(options: { timeoutMs?: number; signal?: AbortSignal; libc?: Libc } = {}): DeviceMapper {
    const libc = options.libc ?? withUevents(kernel, udev);
    const nodeSync = new UdevCookieSync({
      dir,
      libc,
      sysv: sem,
      timeoutMs: options.timeoutMs ?? 2000,
      signal: options.signal,
      logger: { warn: (warning) => warnings.push(warning) },
    });
    return DeviceMapper.open({ controlPath: '/dev/null', libc, nodeSync });
  }

  async function activate(name: string): Promise<void> {
    dm.create(name);
    dm.load(name, zeroTable);
    await dm.resume(name);
  }

  beforeEach(function () {
    dir = makeTempDir('cookies');
    kernel = new FakeKernel();
    sem = new TrackingSysv();
    udev = new CompletingUdev(sem);
    warnings = [];
    dm = open();
  });

  afterEach(function () {
    dm.close();
    sem.cleanUp();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('default timeout is 30 s', function () {
    expect(DEFAULT_UDEV_WAIT_TIMEOUT_MS).to.equal(30_000);
  });

  it('resume sends cookie with flags 0x60', async function () {
    dm.create('vol');
    dm.load('vol', zeroTable);
    await dm.resume('vol');
    const [call] = kernel.calls('DM_DEV_SUSPEND');
    const eventNr = call.header.eventNr;
    expect(eventNr >>> 16).to.equal(0x60);
    expect(COOKIE_UDEV_FLAGS).to.equal(0x60);
    expect(eventNr & 0xffff).to.not.equal(0);
    expect(udev.seen).to.deep.equal([eventNr]);
    expect(sem.created).to.have.length(1);
    expect(sem.live()).to.deep.equal([]);
  });

  it('resume waits for udev', async function () {
    udev = new CompletingUdev(sem, 150);
    dm.close();
    dm = open();
    dm.create('vol');
    dm.load('vol', zeroTable);
    const started = performance.now();
    const info = await dm.resume('vol');
    expect(performance.now() - started).to.be.at.least(140);
    expect(info.nodeSync).to.equal('udev');
    expect(sem.live()).to.deep.equal([]);
  });

  it('udev without node gets a fixed node', async function () {
    await activate('vol');
    // The fake udev completes cookies but makes no node, so the library does.
    expect(warnings.map((w) => w.code)).to.deep.equal(['DM_UDEV_NODE_FIXED']);
    expect(warnings[0].changes).to.deep.equal([{ action: 'created', path: path.join(dir, 'vol') }]);
    expect(kernel.mknodCalls.map((call) => call.path)).to.deep.equal([path.join(dir, 'vol')]);
  });

  it('resume of active device needs no uevent', async function () {
    await activate('vol');
    warnings.length = 0;
    const started = performance.now();
    const info = await dm.resume('vol');
    // Far below the 2 s wait a uevent would start.
    expect(performance.now() - started).to.be.below(1000);
    expect(info.nodeSync).to.equal('no-uevent');
    expect(warnings.map((w) => w.code)).to.deep.equal(['DM_UDEV_NO_UEVENT']);
    expect(sem.created).to.have.length(2);
    expect(sem.live()).to.deep.equal([]);
  });

  it('timeout completes cookie and keeps device', async function () {
    udev.enabled = false;
    dm.close();
    dm = open({ timeoutMs: 100 });
    dm.create('t-hang');
    dm.load('t-hang', zeroTable);
    const started = performance.now();
    const info = await dm.resume('t-hang');
    const elapsed = performance.now() - started;
    expect(elapsed).to.be.at.least(95);
    expect(elapsed).to.be.below(1000);
    expect(info.nodeSync).to.equal('timeout');
    expect(sem.live()).to.deep.equal([]);
    const [warning] = warnings;
    expect(warning.code).to.equal('DM_UDEV_WAIT_TIMEOUT');
    expect(warning.device).to.equal('t-hang');
    expect(warning.cookie! >>> 16).to.equal(0x0d4d);
    expect(warning.semid).to.equal(sem.created[0]);
    expect(warning.message).to.contain('100 ms');
    expect(kernel.mknodCalls.map((call) => call.path)).to.deep.equal([path.join(dir, 't-hang')]);
    const device = kernel.devices.get('t-hang');
    expect(device?.live).to.not.equal(undefined);
    expect(device?.suspended).to.equal(false);
  });

  it('event loop runs during a wait', async function () {
    udev.enabled = false;
    dm.close();
    dm = open({ timeoutMs: 300 });
    dm.create('vol');
    dm.load('vol', zeroTable);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    try {
      await dm.resume('vol');
    } finally {
      clearInterval(ticker);
    }
    // About 30 ticks fit in the 300 ms wait; a blocked loop would give at most one.
    expect(ticks).to.be.at.least(5);
  });

  it('instance signal aborts the wait', async function () {
    udev.enabled = false;
    const controller = new AbortController();
    dm.close();
    dm = open({ timeoutMs: 60_000, signal: controller.signal });
    dm.create('vol');
    dm.load('vol', zeroTable);
    setTimeout(() => controller.abort(new Error('shutting down')), 50);
    const started = performance.now();
    const error = await rejectionOf(dm.resume('vol'));
    expect(performance.now() - started).to.be.below(1000);
    expect(error.code).to.equal(UdevErrorCode.ABORTED);
    expect(error.device).to.equal('vol');
    expect((error.cause as Error).message).to.equal('shutting down');
    expect(sem.live()).to.deep.equal([]);
    expect(kernel.devices.get('vol')?.suspended).to.equal(false);
  });

  it('operation signal aborts the wait', async function () {
    udev.enabled = false;
    const sync = new UdevCookieSync({ dir, libc: kernel, sysv: sem, timeoutMs: 60_000, logger: { warn: () => undefined } });
    const task = sync.begin('resume', { signal: AbortSignal.timeout(30) });
    const error = await rejectionOf(task.finish({ kind: 'resume', name: 'vol' }, ueventReply, { major: 253, minor: 0 }));
    expect(error.code).to.equal(UdevErrorCode.ABORTED);
    expect(sem.live()).to.deep.equal([]);
  });

  it('operation timeout overrides default', async function () {
    udev.enabled = false;
    const sync = new UdevCookieSync({ dir, libc: kernel, sysv: sem, timeoutMs: 60_000, logger: { warn: () => undefined } });
    const task = sync.begin('resume', { timeoutMs: 20 });
    expect(await task.finish({ kind: 'resume', name: 'vol' }, ueventReply, { major: 253, minor: 0 })).to.equal('timeout');
    expect(sem.live()).to.deep.equal([]);
  });

  for (const [command, errno] of [
    ['DM_DEV_SUSPEND', ENXIO],
    ['DM_DEV_SUSPEND', EINVAL],
    ['DM_DEV_REMOVE', EBUSY],
    ['DM_DEV_RENAME', EBUSY],
  ] as const) {
    it(`${command} errno ${errno} releases cookie`, async function () {
      await activate('vol');
      kernel.failNext(command, errno);
      const actions = { DM_DEV_SUSPEND: () => dm.resume('vol'), DM_DEV_REMOVE: () => dm.remove('vol'), DM_DEV_RENAME: () => dm.rename('vol', 'vol2') };
      const error = await rejectionOf(actions[command]());
      expect(error.errno).to.equal(errno);
      expect(sem.created).to.have.length(2);
      expect(sem.live()).to.deep.equal([]);
    });
  }

  it('remove retries release each cookie', async function () {
    await activate('thin_dev_1');
    kernel.failNext('DM_DEV_REMOVE', EBUSY, 3);
    await dm.remove('thin_dev_1', { retry: 5, retryDelayMs: 1 });
    const removes = kernel.calls('DM_DEV_REMOVE');
    expect(removes).to.have.length(4);
    for (const call of removes) expect(call.header.eventNr >>> 16).to.equal(0x60);
    // One cookie for the resume, one for each of the four remove attempts.
    expect(sem.created).to.have.length(5);
    expect(sem.live()).to.deep.equal([]);
    expect(kernel.devices.has('thin_dev_1')).to.equal(false);
  });

  it('exception before the ioctl returns releases cookie', async function () {
    await activate('vol');
    const throwing = new Proxy(withUevents(kernel, udev), {
      get(target, property) {
        if (property === 'ioctlBuffer') {
          return (fd: number, request: number, buf: Buffer) => {
            if ((request & 0xff) === 6) throw new TypeError('injected');
            return target.ioctlBuffer(fd, request, buf);
          };
        }
        return Reflect.get(target, property);
      },
    });
    const other = open({ libc: throwing });
    try {
      await other.resume('vol').then(
        () => expect.fail('resume resolved'),
        (error: unknown) => expect((error as Error).message).to.equal('injected'),
      );
    } finally {
      other.close();
    }
    expect(sem.live()).to.deep.equal([]);
  });

  it('node failure after the wait releases cookie', async function () {
    udev.enabled = false;
    dm.close();
    dm = open({ timeoutMs: 10 });
    dm.create('vol');
    dm.load('vol', zeroTable);
    kernel.failNext('mknod', EPERM);
    const error = await rejectionOf(dm.resume('vol'));
    expect(error.code).to.equal('EPERM');
    expect(error.syscall).to.equal('mknod');
    expect(sem.live()).to.deep.equal([]);
  });

  it('failed semget sends no ioctl', async function () {
    dm.create('vol');
    dm.load('vol', zeroTable);
    sem.failures.set('semget', osConstants.errno.ENOSPC);
    const error = await rejectionOf(dm.resume('vol'));
    expect(error.code).to.equal('ENOSPC');
    expect(kernel.calls('DM_DEV_SUSPEND')).to.have.length(0);
  });

  it('failed increment removes the cookie', async function () {
    dm.create('vol');
    dm.load('vol', zeroTable);
    sem.failures.set('semop', osConstants.errno.ERANGE);
    const error = await rejectionOf(dm.resume('vol'));
    sem.failures.delete('semop');
    expect(error.code).to.equal('ERANGE');
    expect(sem.created).to.have.length(1);
    expect(sem.live()).to.deep.equal([]);
  });

  it('extra udevcomplete counts as done', async function () {
    // Two completions during the ioctl leave nothing for the library's own decrement (EAGAIN).
    const twice = {
      onUevent: (eventNr: number) => {
        completeCookie(sem, eventNr);
        completeCookie(sem, eventNr);
      },
    };
    const other = open({ libc: withUevents(kernel, twice) });
    try {
      other.create('vol');
      other.load('vol', zeroTable);
      expect((await other.resume('vol')).nodeSync).to.equal('udev');
    } finally {
      other.close();
    }
    expect(sem.live()).to.deep.equal([]);
  });

  it('deferred remove keeps node', async function () {
    await activate('vol');
    kernel.devices.get('vol')!.openCount = 1;
    warnings.length = 0;
    await dm.remove('vol', { deferred: true });
    expect(fs.existsSync(path.join(dir, 'vol'))).to.equal(true);
    expect(warnings).to.deep.equal([]);
    expect(sem.live()).to.deep.equal([]);
  });

  it('rename moves node after udev', async function () {
    await activate('vol');
    const renamed = await dm.rename('vol', 'vol2');
    expect(renamed.nodeSync).to.equal('udev');
    expect(fs.existsSync(path.join(dir, 'vol'))).to.equal(false);
    expect(fs.existsSync(path.join(dir, 'vol2'))).to.equal(true);
  });

  it('set uuid keeps node', async function () {
    await activate('vol');
    await dm.setUuid('vol', 'LVM-1');
    expect(fs.existsSync(path.join(dir, 'vol'))).to.equal(true);
  });

  it('nodeRemoved drops node', async function () {
    await activate('vol');
    new UdevCookieSync({ dir, libc: kernel, sysv: sem }).nodeRemoved('vol');
    expect(fs.existsSync(path.join(dir, 'vol'))).to.equal(false);
  });

  it('invalid timeout is rejected', function () {
    expect(() => new UdevCookieSync({ timeoutMs: -1 })).to.throw(DmError, /Invalid udev wait timeout -1/);
    expect(() => new UdevCookieSync({ timeoutMs: Number.NaN })).to.throw(DmError, /Invalid udev wait timeout/);
  });

  it('process exit removes live cookies', function () {
    const syncModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/udev/sync.js');
    const script = `
      const { UdevCookieSync } = await import(${JSON.stringify(syncModule)});
      const task = new UdevCookieSync().begin('resume');
      console.log(task.eventNr & 0xffff);
      process.exit(0);
    `;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(result.status, result.stderr).to.equal(0);
    const key = (0x0d4d << 16) | Number(result.stdout.trim());
    const left = sem.semget(key, 1, 0);
    if (left >= 0) sem.semctlInt(left, 0, 0, 0);
    expect(left).to.be.below(0);
  });
});
