// The cookie protocol on real System V semaphores of the test machine:
// key and event_nr layout, create/increment/decrement/remove, dmsetup's
// udevcomplete, listing and removal by age. Expected values are written out
// from libdm-common.c and dmsetup.c rather than taken from src/.

import fs from 'node:fs';
import { constants as osConstants } from 'node:os';

import { expect } from 'chai';

import { DmError } from '../../src/ioctl/errors.js';
import { encodeSembufs, IPC_CREAT, IPC_EXCL, semidDsLayout, sysv } from '../../src/ioctl/sysv.js';
import {
  completeCookie,
  cookieEventNr,
  cookieKey,
  createCookie,
  DmUdevFlag,
  formatCookie,
  keyOfCookie,
  listCookies,
  openCookie,
  parseCookie,
  removeCookies,
  semaphoreSupportProblem,
  UdevErrorCode,
} from '../../src/udev/cookie.js';
import { TrackingSysv } from './udev-fakes.js';

const { EAGAIN, ENOENT, ENOSPC, ENOSYS, EPERM } = osConstants.errno;

function catchError(action: () => unknown): DmError {
  try {
    action();
  } catch (error) {
    expect(error).to.be.instanceOf(DmError);
    return error as DmError;
  }
  throw new Error('expected a DmError');
}

describe('udev cookie values', function () {
  it('key has the 0x0D4D prefix', function () {
    expect(cookieKey(0x1234)).to.equal(0x0d4d1234);
  });

  it('event_nr carries flags above base', function () {
    expect(cookieEventNr(0x1234, 0x60)).to.equal(0x00601234);
    expect(cookieEventNr(0, 0x43)).to.equal(0x00430000);
  });

  it('udev flags match libdevmapper.h', function () {
    expect(DmUdevFlag).to.deep.equal({
      DM_UDEV_DISABLE_DM_RULES_FLAG: 0x1,
      DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG: 0x2,
      DM_UDEV_DISABLE_DISK_RULES_FLAG: 0x4,
      DM_UDEV_DISABLE_OTHER_RULES_FLAG: 0x8,
      DM_UDEV_LOW_PRIORITY_FLAG: 0x10,
      DM_UDEV_DISABLE_LIBRARY_FALLBACK: 0x20,
      DM_UDEV_PRIMARY_SOURCE_FLAG: 0x40,
    });
  });

  it('DM_COOKIE maps to its key', function () {
    // udev passes event_nr in decimal: flags 0x60, base 0x1234.
    expect(keyOfCookie(parseCookie(String(0x00601234)))).to.equal(0x0d4d1234);
    expect(keyOfCookie(parseCookie('0x0d4d1234'))).to.equal(0x0d4d1234);
    expect(keyOfCookie(parseCookie('0X0D4D1234'))).to.equal(0x0d4d1234);
  });

  it('flags-only value names no key', function () {
    expect(keyOfCookie(0x00430000)).to.equal(undefined);
  });

  it('parses like strtoul base 0', function () {
    expect(parseCookie('017')).to.equal(15);
    expect(parseCookie(' 42 ')).to.equal(42);
    expect(parseCookie('4294967295')).to.equal(0xffffffff);
  });

  it('rejects invalid cookie text', function () {
    for (const text of ['', '0', 'abc', '0x', '12z', '4294967296', '-1', '09']) {
      expect(catchError(() => parseCookie(text)).code, text).to.equal(UdevErrorCode.INVALID_COOKIE);
    }
  });

  it('formats key like dmsetup', function () {
    expect(formatCookie(0x0d4d00ab)).to.equal('0xd4d00ab');
  });
});

describe('udev cookie semaphores', function () {
  let sem: TrackingSysv;

  beforeEach(function () {
    sem = new TrackingSysv();
  });

  afterEach(function () {
    sem.cleanUp();
  });

  it('create makes exclusive set of value 1', function () {
    const cookie = createCookie(sem);
    expect(cookie.key >>> 16).to.equal(0x0d4d);
    expect(cookie.base).to.not.equal(0);
    expect(cookie.value()).to.equal(1);
    // IPC_EXCL: the same key cannot be created twice.
    expect(sem.semget(cookie.key, 1, 0o600 | IPC_CREAT | IPC_EXCL)).to.equal(-osConstants.errno.EEXIST);
  });

  it('create has mode 0600', function () {
    const cookie = createCookie(sem);
    const line = fs
      .readFileSync('/proc/sysvipc/sem', 'utf8')
      .split('\n')
      .map((row) => row.trim().split(/\s+/))
      .find((fields) => Number(fields[1]) === cookie.semid);
    expect(line?.[0]).to.equal(String(cookie.key));
    expect(line?.[2]).to.equal('600');
  });

  it('create retries a taken key', function () {
    const taken = createCookie(sem);
    const bases = [taken.base, 0, taken.base === 0xfffe ? 0xfffd : 0xfffe];
    const cookie = createCookie(sem, () => bases.shift() as number);
    expect(cookie.base).to.not.equal(taken.base);
    expect(cookie.base).to.not.equal(0);
  });

  it('create reports a full table', function () {
    sem.failures.set('semget', ENOSPC);
    const error = catchError(() => createCookie(sem));
    expect(error.code).to.equal('ENOSPC');
    expect(error.message).to.contain('/proc/sys/kernel/sem');
  });

  it('failed SETVAL removes the set', function () {
    sem.failures.set('SETVAL', EPERM);
    expect(catchError(() => createCookie(sem)).code).to.equal('EPERM');
    sem.failures.delete('SETVAL');
    expect(sem.created).to.have.length(1);
    expect(sem.live()).to.deep.equal([]);
  });

  it('increment and decrement move value', function () {
    const cookie = createCookie(sem);
    cookie.increment();
    expect(cookie.value()).to.equal(2);
    cookie.decrement();
    cookie.decrement();
    expect(cookie.value()).to.equal(0);
  });

  it('decrement at zero fails with EAGAIN', function () {
    const cookie = createCookie(sem);
    cookie.decrement();
    const error = catchError(() => cookie.decrement());
    expect(error.code).to.equal('EAGAIN');
    expect(error.errno).to.equal(EAGAIN);
    expect(error.message).to.contain('already 0');
  });

  it('remove is idempotent', function () {
    const cookie = createCookie(sem);
    expect(cookie.remove()).to.equal(true);
    expect(cookie.remove()).to.equal(false);
    expect(cookie.removed).to.equal(true);
    expect(cookie.value()).to.equal(undefined);
    expect(sem.live()).to.deep.equal([]);
  });

  it('remove of vanished set is quiet', function () {
    const cookie = createCookie(sem);
    sysv().semctlInt(cookie.semid, 0, 0, 0);
    expect(cookie.remove()).to.equal(false);
  });

  it('udevcomplete decrements by DM_COOKIE', function () {
    const cookie = createCookie(sem);
    cookie.increment();
    expect(completeCookie(sem, cookieEventNr(cookie.base, 0x60))).to.equal(true);
    expect(cookie.value()).to.equal(1);
  });

  it('udevcomplete ignores flags-only value', function () {
    expect(completeCookie(sem, 0x00600000)).to.equal(false);
    expect(sem.semgetCalls).to.equal(0);
  });

  it('udevcomplete of unknown cookie fails', function () {
    const cookie = createCookie(sem);
    cookie.remove();
    const error = catchError(() => completeCookie(sem, cookie.key));
    expect(error.code).to.equal('ENOENT');
    expect(error.errno).to.equal(ENOENT);
    expect(error.message).to.contain(formatCookie(cookie.key));
  });

  it('openCookie rejects flags-only value', function () {
    expect(catchError(() => openCookie(sem, 0x00600000)).code).to.equal(UdevErrorCode.INVALID_COOKIE);
  });

  it('semop buffer packs struct sembuf', function () {
    const buf = encodeSembufs([{ num: 0, op: -1, flags: 0o4000 }]);
    expect(buf.toString('hex')).to.equal('0000' + 'ffff' + '0008');
  });
});

describe('udev cookie listing', function () {
  let sem: TrackingSysv;

  beforeEach(function () {
    sem = new TrackingSysv();
  });

  afterEach(function () {
    sem.cleanUp();
  });

  it('semid_ds layout matches /proc/sysvipc/sem', function () {
    if (!semidDsLayout()) this.skip();
    const cookie = createCookie(sem);
    cookie.increment();
    const [listed] = listCookies(sem);
    const fields = fs
      .readFileSync('/proc/sysvipc/sem', 'utf8')
      .split('\n')
      .map((row) => row.trim().split(/\s+/))
      .find((row) => Number(row[1]) === cookie.semid) as string[];
    // key semid perms nsems uid gid cuid cgid otime ctime
    expect(listed.key).to.equal(Number(fields[0]));
    expect(listed.semid).to.equal(Number(fields[1]));
    expect(listed.otime).to.equal(Number(fields[8]));
    expect(listed.ctime).to.equal(Number(fields[9]));
    expect(listed.value).to.equal(2);
  });

  it('lists only cookie keys', function () {
    const cookie = createCookie(sem);
    const other = sem.semget(0x7e570001 + (process.pid & 0xff), 1, 0o600 | IPC_CREAT | IPC_EXCL);
    expect(other).to.be.at.least(0);
    expect(listCookies(sem).map((status) => status.semid)).to.deep.equal([cookie.semid]);
  });

  it('removeCookies skips young ones', function () {
    const young = createCookie(sem);
    const [status] = listCookies(sem);
    const now = status.ctime + 120;
    // ctime + 5 minutes is after now, so it is skipped; with age 1 it is not.
    expect(removeCookies(sem, 5, now)).to.deep.equal({ destroyed: 0, skipped: 1, failed: [] });
    expect(young.value()).to.equal(1);
    expect(removeCookies(sem, 1, now)).to.deep.equal({ destroyed: 1, skipped: 0, failed: [] });
    expect(young.value()).to.equal(undefined);
  });

  it('removeCookies with age 0 takes all', function () {
    createCookie(sem);
    createCookie(sem);
    const result = removeCookies(sem, 0);
    expect(result.destroyed).to.equal(2);
    expect(sem.live()).to.deep.equal([]);
  });

  it('removeCookies reports failures', function () {
    createCookie(sem);
    sem.failures.set('IPC_RMID', EPERM);
    const result = removeCookies(sem, 0);
    sem.failures.delete('IPC_RMID');
    expect(result.destroyed).to.equal(0);
    expect(result.failed.map((failure) => failure.code)).to.deep.equal(['EPERM']);
  });

  it('support check names the failed call', function () {
    expect(semaphoreSupportProblem(sem)).to.equal(undefined);
    sem.failures.set('SEM_INFO', ENOSYS);
    expect(semaphoreSupportProblem(sem)).to.equal('semctl(SEM_INFO) failed with ENOSYS');
  });
});
