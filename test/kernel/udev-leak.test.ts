// Hundreds of failing operations with udev cookies forced on: every way a
// command can fail or end early must remove its semaphore, so the number of
// semaphores with the device-mapper key prefix is the same afterwards. Runs
// with and without udev.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { constants as osConstants } from 'node:os';

import { expect } from 'chai';

import { DmError, listCookies, openDeviceMapper, type DeviceMapper, type UdevWarning } from '../../src/index.js';
import { libc, type Libc } from '../../src/ioctl/libc.js';
import { sysv } from '../../src/ioctl/sysv.js';
import { leftoverDevices, testName } from './helpers.js';

const ROUNDS = 40;
const ZERO_TABLE = [{ start: 0n, length: 2048n, type: 'zero', params: '' }];
/** _IOC_NR of the commands that carry a cookie: DM_DEV_REMOVE, DM_DEV_RENAME, DM_DEV_SUSPEND. */
const COOKIE_COMMANDS = new Set([4, 5, 6]);
/** Offset of version[1] in struct dm_ioctl; a minor above the kernel's makes it return EINVAL. */
const VERSION_MINOR_OFFSET = 4;
const FUTURE_MINOR = 99;

type Fault = 'none' | 'future-version' | 'throw';

function cookieCount(): number {
  return listCookies(sysv()).length;
}

/** Returns a libc whose cookie commands can be made to fail, and whose mknod can be made to fail with EPERM. */
function faultyLibc(): Libc & { fault: Fault; failMknod: boolean } {
  const real = libc();
  const faulty = {
    ...real,
    fault: 'none' as Fault,
    failMknod: false,
    ioctlBuffer(fd: number, request: number, buf: Buffer): number {
      if (COOKIE_COMMANDS.has(request & 0xff)) {
        if (faulty.fault === 'throw') throw new Error('injected failure after the cookie was made');
        if (faulty.fault === 'future-version') buf.writeUInt32LE(FUTURE_MINOR, VERSION_MINOR_OFFSET);
      }
      return real.ioctlBuffer(fd, request, buf);
    },
    mknod(path: string, mode: number, dev: bigint): number {
      return faulty.failMknod ? -osConstants.errno.EPERM : real.mknod(path, mode, dev);
    },
  };
  return faulty;
}

/** Runs `action` and returns the code it was rejected with, or 'resolved'. */
async function outcome(action: () => Promise<unknown>): Promise<string> {
  try {
    await action();
    return 'resolved';
  } catch (error) {
    if (error instanceof DmError) return error.code;
    return (error as Error).message.startsWith('injected') ? 'injected' : String(error);
  }
}

describe('udev cookie leaks', function () {
  this.timeout(600_000);
  const warnings: UdevWarning[] = [];
  const faulty = faultyLibc();
  let dm: DeviceMapper;
  let aborted: DeviceMapper;

  before(function () {
    const udevLogger = { warn: (warning: UdevWarning) => warnings.push(warning) };
    // Timeout 0: a wait ends at once, so each successful command also takes the timeout path.
    dm = openDeviceMapper({ udev: 'cookie', udevWaitTimeoutMs: 0, libc: faulty, udevLogger });
    aborted = openDeviceMapper({ udev: 'cookie', udevWaitTimeoutMs: 60_000, udevWaitSignal: AbortSignal.abort(), udevLogger });
  });

  after(async function () {
    faulty.fault = 'none';
    faulty.failMknod = false;
    for (const name of leftoverDevices(dm)) await dm.remove(name, { ignoreMissing: true, retry: true }).catch(() => undefined);
    dm.close();
    aborted.close();
    if (fs.existsSync('/run/udev/control')) execFileSync('udevadm', ['settle', '--timeout=60']);
  });

  it('failing operations leave no semaphore', async function () {
    const before = cookieCount();
    const missing = testName('leak-missing');
    const busy = testName('leak-busy');
    const other = testName('leak-other');
    const moving = [testName('leak-a'), testName('leak-b')];
    const unmovable = [testName('leak-c'), testName('leak-d')];
    await dm.createDevice(busy, { table: ZERO_TABLE, uuid: `${busy}-uuid` });
    await dm.createDevice(other, { table: ZERO_TABLE });
    await dm.createDevice(moving[0], { table: ZERO_TABLE });
    await dm.createDevice(unmovable[0], { table: ZERO_TABLE });
    const holder = fs.openSync(`/dev/dm-${(dm.info(busy) as { minor: number }).minor}`, 'r');
    const seen = new Map<string, number>();
    const record = (kind: string, code: string): void => {
      const key = `${kind}: ${code}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    };

    try {
      for (let round = 0; round < ROUNDS; round++) {
        record('resume missing', await outcome(() => dm.resume(missing)));
        record('remove missing', await outcome(() => dm.remove(missing)));
        record('rename missing', await outcome(() => dm.rename(missing, `${missing}-2`)));
        record('remove open', await outcome(() => dm.remove(busy)));
        record('remove open, 3 tries', await outcome(() => dm.remove(busy, { retry: 2, retryDelayMs: 1 })));
        record('rename onto taken name', await outcome(() => dm.rename(busy, other)));
        record('set uuid twice', await outcome(() => dm.setUuid(busy, `${busy}-again`)));

        faulty.fault = 'future-version';
        record('resume, future version', await outcome(() => dm.resume(other)));
        record('remove, future version', await outcome(() => dm.remove(other)));
        faulty.fault = 'throw';
        record('resume, exception', await outcome(() => dm.resume(other)));
        record('rename, exception', await outcome(() => dm.rename(other, missing)));
        faulty.fault = 'none';

        record('rename, timeout', await outcome(() => dm.rename(moving[round % 2], moving[(round + 1) % 2])));
        faulty.failMknod = true;
        record('rename, node fails', await outcome(() => dm.rename(unmovable[round % 2], unmovable[(round + 1) % 2])));
        faulty.failMknod = false;

        aborted.suspend(other);
        record('resume, aborted', await outcome(() => aborted.resume(other)));
      }
    } finally {
      fs.closeSync(holder);
      faulty.fault = 'none';
      faulty.failMknod = false;
    }

    const counts = Object.fromEntries(seen);
    expect(counts['resume missing: ENXIO']).to.equal(ROUNDS);
    expect(counts['remove missing: ENXIO']).to.equal(ROUNDS);
    expect(counts['rename missing: ENXIO']).to.equal(ROUNDS);
    expect(counts['remove open: EBUSY']).to.equal(ROUNDS);
    expect(counts['remove open, 3 tries: EBUSY']).to.equal(ROUNDS);
    expect(counts['rename onto taken name: EBUSY']).to.equal(ROUNDS);
    expect(counts['set uuid twice: EINVAL']).to.equal(ROUNDS);
    expect(counts['resume, future version: EINVAL']).to.equal(ROUNDS);
    expect(counts['remove, future version: EINVAL']).to.equal(ROUNDS);
    expect(counts['resume, exception: injected']).to.equal(ROUNDS);
    expect(counts['rename, exception: injected']).to.equal(ROUNDS);
    expect(counts['rename, timeout: resolved']).to.equal(ROUNDS);
    // With udev running its link may already be there, so mknod is not always needed.
    expect((counts['rename, node fails: EPERM'] ?? 0) + (counts['rename, node fails: resolved'] ?? 0)).to.equal(ROUNDS);
    expect(counts['resume, aborted: ABORT_ERR']).to.equal(ROUNDS);
    expect(warnings.filter((w) => w.code === 'DM_UDEV_WAIT_TIMEOUT').length).to.be.at.least(ROUNDS);
    expect(cookieCount()).to.equal(before);
  });
});
