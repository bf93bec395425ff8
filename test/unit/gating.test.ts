// Commands and flags the kernel's interface is too old for are refused
// before any ioctl, with the versions in the message.

import { expect } from 'chai';

import { DeviceMapper } from '../../src/dm/client.js';
import { DmErrorCode } from '../../src/ioctl/errors.js';
import { catchDmError, FakeKernel, rejectionOf } from './fake-kernel.js';

function openAt(version: [number, number, number]): { dm: DeviceMapper; kernel: FakeKernel } {
  const kernel = new FakeKernel({ version });
  return { dm: DeviceMapper.open({ controlPath: '/dev/null', libc: kernel }), kernel };
}

describe('interface version gating', function () {
  it('armPoll needs 4.36', function () {
    const { dm, kernel } = openAt([4, 27, 0]);
    const before = kernel.dmCalls.length;
    const error = catchDmError(() => dm.armPoll());
    expect(error.code).to.equal(DmErrorCode.UNSUPPORTED_BY_KERNEL);
    expect(error.command).to.equal('DM_DEV_ARM_POLL');
    expect(error.message).to.contain('4.36.0');
    expect(error.message).to.contain('4.27.0');
    expect(kernel.dmCalls.length).to.equal(before);
  });

  it('targetVersion needs 4.41', function () {
    const { dm } = openAt([4, 40, 0]);
    const error = catchDmError(() => dm.targetVersion('thin-pool'));
    expect(error.code).to.equal(DmErrorCode.UNSUPPORTED_BY_KERNEL);
    expect(error.message).to.contain('4.41.0');
  });

  it('waitEvent needs arm poll', async function () {
    const { dm } = openAt([4, 35, 0]);
    dm.create('vol');
    const error = catchDmError(() => {
      void dm.waitEvent('vol', 0);
    });
    expect(error.code).to.equal(DmErrorCode.UNSUPPORTED_BY_KERNEL);
  });

  it('deferred remove needs 4.27', async function () {
    const { dm, kernel } = openAt([4, 26, 0]);
    dm.create('vol');
    const before = kernel.dmCalls.length;
    const error = await rejectionOf(dm.remove('vol', { deferred: true }));
    expect(error.code).to.equal(DmErrorCode.UNSUPPORTED_BY_KERNEL);
    expect(error.message).to.contain('DM_DEFERRED_REMOVE');
    expect(kernel.dmCalls.length).to.equal(before);
  });

  it('setUuid needs 4.19', async function () {
    const { dm } = openAt([4, 18, 0]);
    dm.create('vol');
    const error = await rejectionOf(dm.setUuid('vol', 'u'));
    expect(error.code).to.equal(DmErrorCode.UNSUPPORTED_BY_KERNEL);
    expect(error.message).to.contain('DM_UUID_FLAG');
  });

  it('noflush status needs 4.12', function () {
    const { dm } = openAt([4, 11, 0]);
    dm.create('vol');
    const error = catchDmError(() => dm.status('vol', { noflush: true }));
    expect(error.code).to.equal(DmErrorCode.UNSUPPORTED_BY_KERNEL);
  });

  it('same requests pass on 4.47', async function () {
    const { dm } = openAt([4, 47, 0]);
    dm.create('vol');
    dm.status('vol', { noflush: true });
    await dm.setUuid('vol', 'u');
    await dm.remove('vol', { deferred: true });
    expect(dm.info('vol').exists).to.equal(false);
  });
});
