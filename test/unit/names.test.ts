// Device name and uuid limits: DM_NAME_LEN 128 and DM_UUID_LEN 129 bytes
// including the NUL, and the names the kernel's check_name() rejects. Bad
// values must fail before any ioctl reaches the kernel.

import { expect } from 'chai';

import { DeviceMapper } from '../../src/dm/client.js';
import { checkName, checkUuid } from '../../src/dm/names.js';
import { DmErrorCode } from '../../src/ioctl/errors.js';
import { catchDmError, FakeKernel, rejectionOf } from './fake-kernel.js';

const invalidNames: [string, string][] = [
  ['128 bytes', 'a'.repeat(128)],
  ['64 two-byte characters', 'é'.repeat(64)],
  ['empty name', ''],
  ['dot', '.'],
  ['dot dot', '..'],
  ['control', 'control'],
  ['slash', 'a/b'],
  ['NUL byte', 'a\0b'],
];

describe('checkName', function () {
  it('accepts 127 bytes', function () {
    expect(() => checkName('a'.repeat(127))).to.not.throw();
  });

  it('accepts 126 bytes of é', function () {
    expect(() => checkName('é'.repeat(63))).to.not.throw();
  });

  it('accepts spaces and dots inside', function () {
    expect(() => checkName('xx yy.1')).to.not.throw();
  });

  for (const [label, name] of invalidNames) {
    it(`rejects ${label}`, function () {
      expect(catchDmError(() => checkName(name)).code).to.equal(DmErrorCode.INVALID_NAME);
    });
  }

  it('message counts bytes not characters', function () {
    expect(catchDmError(() => checkName('é'.repeat(64))).message).to.include('128 bytes');
  });
});

describe('checkUuid', function () {
  it('accepts 128 bytes', function () {
    expect(() => checkUuid('u'.repeat(128))).to.not.throw();
  });

  it('rejects 129 bytes', function () {
    expect(catchDmError(() => checkUuid('u'.repeat(129))).code).to.equal(DmErrorCode.INVALID_UUID);
  });

  it('rejects NUL byte', function () {
    expect(catchDmError(() => checkUuid('a\0b')).code).to.equal(DmErrorCode.INVALID_UUID);
  });
});

describe('name limits in requests', function () {
  let kernel: FakeKernel;
  let dm: DeviceMapper;
  let callsAfterOpen: number;

  beforeEach(function () {
    kernel = new FakeKernel();
    dm = DeviceMapper.open({ controlPath: '/dev/null', libc: kernel });
    callsAfterOpen = kernel.dmCalls.length;
  });

  afterEach(function () {
    dm.close();
  });

  it('create sends 127-byte name', function () {
    dm.create('a'.repeat(127));
    const [call] = kernel.calls('DM_DEV_CREATE');
    expect(call.bytes.subarray(48, 175)).to.deep.equal(Buffer.alloc(127, 'a'));
    expect(call.bytes[175]).to.equal(0);
    expect(call.result).to.equal(0);
  });

  for (const [label, name] of invalidNames) {
    it(`create rejects ${label} without ioctl`, function () {
      expect(catchDmError(() => dm.create(name)).code).to.equal(DmErrorCode.INVALID_NAME);
      expect(kernel.dmCalls).to.have.length(callsAfterOpen);
    });
  }

  it('create sends 128-byte uuid', function () {
    dm.create('vol', { uuid: 'u'.repeat(128) });
    const [call] = kernel.calls('DM_DEV_CREATE');
    expect(call.bytes.subarray(176, 304)).to.deep.equal(Buffer.alloc(128, 'u'));
    expect(call.bytes[304]).to.equal(0);
  });

  it('create rejects 129-byte uuid without ioctl', function () {
    expect(catchDmError(() => dm.create('vol', { uuid: 'u'.repeat(129) })).code).to.equal(DmErrorCode.INVALID_UUID);
    expect(kernel.dmCalls).to.have.length(callsAfterOpen);
  });

  it('info rejects invalid name without ioctl', function () {
    expect(catchDmError(() => dm.info('a/b')).code).to.equal(DmErrorCode.INVALID_NAME);
    expect(kernel.dmCalls).to.have.length(callsAfterOpen);
  });

  it('remove rejects invalid name without ioctl', async function () {
    expect((await rejectionOf(dm.remove('control'))).code).to.equal(DmErrorCode.INVALID_NAME);
    expect(kernel.dmCalls).to.have.length(callsAfterOpen);
  });

  it('info rejects long uuid without ioctl', function () {
    expect(catchDmError(() => dm.info({ uuid: 'u'.repeat(129) })).code).to.equal(DmErrorCode.INVALID_UUID);
    expect(kernel.dmCalls).to.have.length(callsAfterOpen);
  });
});
