// A table test over every DmErrorCode and every reverse map the library
// offers: errno names, command names and flag names. Expected values are
// written out from include/uapi/linux/dm-ioctl.h and the x86-64 Linux errno
// numbers in asm-generic/errno-base.h and errno.h.

import { expect } from 'chai';

import { commandName, flagNames } from '../../src/ioctl/constants.js';
import { DmError, DmErrorCode, errnoName, systemError } from '../../src/ioctl/errors.js';

const CODES: Record<string, string> = {
  INVALID_NAME: 'ERR_DM_INVALID_NAME',
  INVALID_UUID: 'ERR_DM_INVALID_UUID',
  INVALID_ARGUMENT: 'ERR_DM_INVALID_ARGUMENT',
  BUFFER_LIMIT: 'ERR_DM_BUFFER_LIMIT',
  UNSUPPORTED_BY_KERNEL: 'ERR_DM_UNSUPPORTED_BY_KERNEL',
  DRIVER_UNAVAILABLE: 'ERR_DM_DRIVER_UNAVAILABLE',
  CLOSED: 'ERR_DM_CLOSED',
  LOOP_ATTACH_FAILED: 'ERR_DM_LOOP_ATTACH_FAILED',
  STEP_FAILED: 'ERR_DM_STEP_FAILED',
  TIMEOUT: 'ERR_DM_TIMEOUT',
  POOL_LOW_ON_SPACE: 'ERR_DM_POOL_LOW_ON_SPACE',
  POOL_OUT_OF_DATA_SPACE: 'ERR_DM_POOL_OUT_OF_DATA_SPACE',
  POOL_UNHEALTHY: 'ERR_DM_POOL_UNHEALTHY',
  TRANSACTION_ID_MISMATCH: 'ERR_DM_TRANSACTION_ID_MISMATCH',
  THIN_IDS_EXHAUSTED: 'ERR_DM_THIN_IDS_EXHAUSTED',
  UDEV_SYNC_UNSUPPORTED: 'ERR_DM_UDEV_SYNC_UNSUPPORTED',
  UDEV_INVALID_COOKIE: 'ERR_DM_UDEV_INVALID_COOKIE',
};

/** errno, its name, and the meaning systemError appends. */
const ERRNOS: [number, string, string][] = [
  [1, 'EPERM', 'operation not permitted'],
  [2, 'ENOENT', 'no such file or directory'],
  [6, 'ENXIO', 'no such device'],
  [12, 'ENOMEM', 'out of memory'],
  [13, 'EACCES', 'permission denied'],
  [16, 'EBUSY', 'device or resource busy'],
  [17, 'EEXIST', 'already exists'],
  [19, 'ENODEV', 'no such device driver'],
  [22, 'EINVAL', 'invalid argument'],
  [25, 'ENOTTY', 'not a device-mapper control node'],
  [28, 'ENOSPC', 'no space left on device'],
  [61, 'ENODATA', 'no data available'],
];

/** Which DmError getter is true for each code; every other getter is false. */
const GETTERS: [string, keyof DmError][] = [
  ['ENXIO', 'notFound'],
  ['EBUSY', 'busy'],
  ['EEXIST', 'alreadyExists'],
  ['EACCES', 'permissionDenied'],
  ['EPERM', 'permissionDenied'],
  ['EINVAL', 'invalidArgument'],
  ['ERR_DM_INVALID_ARGUMENT', 'invalidArgument'],
];
const GETTER_NAMES = ['notFound', 'busy', 'alreadyExists', 'permissionDenied', 'invalidArgument'] as const;

const COMMANDS = [
  'DM_VERSION',
  'DM_REMOVE_ALL',
  'DM_LIST_DEVICES',
  'DM_DEV_CREATE',
  'DM_DEV_REMOVE',
  'DM_DEV_RENAME',
  'DM_DEV_SUSPEND',
  'DM_DEV_STATUS',
  'DM_DEV_WAIT',
  'DM_TABLE_LOAD',
  'DM_TABLE_CLEAR',
  'DM_TABLE_DEPS',
  'DM_TABLE_STATUS',
  'DM_LIST_VERSIONS',
  'DM_TARGET_MSG',
  'DM_DEV_SET_GEOMETRY',
  'DM_DEV_ARM_POLL',
  'DM_GET_TARGET_VERSION',
];

const FLAGS: [number, string][] = [
  [0x1, 'DM_READONLY_FLAG'],
  [0x2, 'DM_SUSPEND_FLAG'],
  [0x4, 'DM_EXISTS_FLAG'],
  [0x8, 'DM_PERSISTENT_DEV_FLAG'],
  [0x10, 'DM_STATUS_TABLE_FLAG'],
  [0x20, 'DM_ACTIVE_PRESENT_FLAG'],
  [0x40, 'DM_INACTIVE_PRESENT_FLAG'],
  [0x100, 'DM_BUFFER_FULL_FLAG'],
  [0x200, 'DM_SKIP_BDGET_FLAG'],
  [0x400, 'DM_SKIP_LOCKFS_FLAG'],
  [0x800, 'DM_NOFLUSH_FLAG'],
  [0x1000, 'DM_QUERY_INACTIVE_TABLE_FLAG'],
  [0x2000, 'DM_UEVENT_GENERATED_FLAG'],
  [0x4000, 'DM_UUID_FLAG'],
  [0x8000, 'DM_SECURE_DATA_FLAG'],
  [0x10000, 'DM_DATA_OUT_FLAG'],
  [0x20000, 'DM_DEFERRED_REMOVE'],
  [0x40000, 'DM_INTERNAL_SUSPEND_FLAG'],
  [0x80000, 'DM_IMA_MEASUREMENT_FLAG'],
];

describe('error table', function () {
  it('lists exactly the known codes', function () {
    expect({ ...DmErrorCode }).to.deep.equal(CODES);
  });

  for (const [key, code] of Object.entries(CODES)) {
    it(`builds a DmError with ${key}`, function () {
      const error = new DmError(code, 'message');
      expect(error).to.be.an.instanceOf(Error);
      expect(error.name).to.equal('DmError');
      expect(error.code).to.equal(code);
    });
  }

  for (const [errno, name, meaning] of ERRNOS) {
    it(`names errno ${errno} ${name}`, function () {
      expect(errnoName(errno)).to.equal(name);
    });

    it(`explains ${name} in messages`, function () {
      const error = systemError(errno, 'DM_DEV_STATUS failed', { syscall: 'ioctl' });
      expect(error.message).to.equal(`DM_DEV_STATUS failed: ${name} (${meaning})`);
      expect(error.code).to.equal(name);
      expect(error.errno).to.equal(errno);
    });
  }

  it('names an unknown errno by number', function () {
    expect(errnoName(4242)).to.equal('E4242');
  });

  for (const code of [...ERRNOS.map(([, name]) => name), ...Object.values(CODES)]) {
    it(`sets the getters for ${code}`, function () {
      const error = new DmError(code, 'message');
      const expected = new Set(GETTERS.filter(([c]) => c === code).map(([, getter]) => getter));
      for (const getter of GETTER_NAMES) {
        expect(error[getter], getter).to.equal(expected.has(getter));
      }
    });
  }

  for (const [nr, name] of COMMANDS.entries()) {
    it(`names command ${nr} ${name}`, function () {
      expect(commandName(nr)).to.equal(name);
    });
  }

  it('names no command past 17', function () {
    expect(commandName(COMMANDS.length)).to.equal(undefined);
  });

  for (const [bit, name] of FLAGS) {
    it(`names flag ${name}`, function () {
      expect(flagNames(bit)).to.deep.equal([name]);
    });
  }

  it('names combined flags lowest first', function () {
    expect(flagNames(0x4 | 0x800 | 0x2)).to.deep.equal(['DM_SUSPEND_FLAG', 'DM_EXISTS_FLAG', 'DM_NOFLUSH_FLAG']);
  });

  it('names no undefined flag bit', function () {
    // Bit 7 and bits from 20 up have no name in interface 4.47.
    expect(flagNames((1 << 7) | (1 << 20) | (1 << 31))).to.deep.equal([]);
  });

  it('names no flag for zero', function () {
    expect(flagNames(0)).to.deep.equal([]);
  });
});
