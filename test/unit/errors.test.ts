// DmError and the errno helpers.

import { expect } from 'chai';

import { DmError, DmErrorCode, errnoName, systemError } from '../../src/ioctl/errors.js';

describe('errnoName', function () {
  const names: [number, string][] = [
    [6, 'ENXIO'],
    [16, 'EBUSY'],
    [17, 'EEXIST'],
    [19, 'ENODEV'],
    [22, 'EINVAL'],
    [61, 'ENODATA'],
  ];
  for (const [errno, name] of names) {
    it(`names errno ${errno} ${name}`, function () {
      expect(errnoName(errno)).to.equal(name);
    });
  }

  it('falls back for unknown errno', function () {
    expect(errnoName(99999)).to.equal('E99999');
  });
});

describe('systemError', function () {
  const error = systemError(6, 'DM_DEV_STATUS on "x" failed', { syscall: 'ioctl', command: 'DM_DEV_STATUS', device: 'x' });

  it('uses errno name as code', function () {
    expect(error.code).to.equal('ENXIO');
  });

  it('keeps errno as positive number', function () {
    expect(error.errno).to.equal(6);
  });

  it('appends errno name and meaning', function () {
    expect(error.message).to.equal('DM_DEV_STATUS on "x" failed: ENXIO (no such device)');
  });

  it('keeps syscall, command and device', function () {
    expect(error.syscall).to.equal('ioctl');
    expect(error.command).to.equal('DM_DEV_STATUS');
    expect(error.device).to.equal('x');
  });

  it('reports ENXIO as not found', function () {
    expect(error.notFound).to.equal(true);
    expect(error.busy).to.equal(false);
  });

  it('reports EBUSY as busy', function () {
    expect(systemError(16, 'x', {}).busy).to.equal(true);
  });

  it('omits meaning for uncommon errno', function () {
    expect(systemError(5, 'read failed', {}).message).to.equal('read failed: EIO');
  });
});

describe('DmError', function () {
  it('is an Error named DmError', function () {
    const error = new DmError(DmErrorCode.CLOSED, 'closed');
    expect(error).to.be.instanceOf(Error);
    expect(error.name).to.equal('DmError');
  });

  it('keeps cause', function () {
    const cause = new Error('inner');
    expect(new DmError('EBUSY', 'outer', { cause }).cause).to.equal(cause);
  });

  it('library codes are distinct', function () {
    const codes = Object.values(DmErrorCode);
    expect(new Set(codes).size).to.equal(codes.length);
  });

  it('library codes share ERR_DM_ prefix', function () {
    for (const code of Object.values(DmErrorCode)) expect(code).to.match(/^ERR_DM_[A-Z_]+$/);
  });
});
