// Mistakes a JavaScript caller can make that the type checker does not
// catch: each gets a DmError naming the value before any system call.

import fs from 'node:fs';
import path from 'node:path';

import { expect } from 'chai';

import { DeviceMapper } from '../../src/dm/client.js';
import { DmErrorCode } from '../../src/ioctl/errors.js';
import { attachLoop } from '../../src/loop/loop.js';
import { bytesToSectors } from '../../src/targets/table.js';
import { ensureSparseFile } from '../../src/thin/pool.js';
import { catchDmError, FakeKernel, makeTempDir, rejectionOf } from './fake-kernel.js';
import type { TableTarget } from '../../src/dm/types.js';

describe('input checks', function () {
  let dir: string;

  beforeEach(function () {
    dir = makeTempDir('input-checks-');
  });

  afterEach(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('fractional byte count is rejected', function () {
    const error = catchDmError(() => bytesToSectors(1.5, 'dataSize'));
    expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
    expect(error.message).to.contain('dataSize 1.5');
  });

  it('table with number sectors is rejected', async function () {
    const kernel = new FakeKernel();
    const dm = DeviceMapper.open({ controlPath: '/dev/null', libc: kernel });
    const table = [{ start: 0, length: 2048, type: 'zero', params: '' }] as unknown as TableTarget[];
    const before = kernel.dmCalls.length;
    const error = await rejectionOf(dm.createDevice('numbers', { table }));
    dm.close();
    expect(error.message).to.contain('pass sectors as bigint');
    expect(kernel.dmCalls.length).to.equal(before);
  });

  it('file under one sector is not attached', function () {
    const kernel = new FakeKernel();
    const backing = path.join(dir, 'small.img');
    fs.writeFileSync(backing, Buffer.alloc(500));
    const error = catchDmError(() => attachLoop(backing, { libc: kernel, devDir: dir }));
    expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
    expect(error.message).to.contain('500 bytes');
    expect(kernel.loopCallsOf('LOOP_CONFIGURE')).to.have.length(0);
  });

  it('sparse file in a missing folder', function () {
    const file = path.join(dir, 'no-such-folder', 'data.img');
    const error = catchDmError(() => ensureSparseFile(file, 1 << 20));
    expect(error.code).to.equal('ENOENT');
    expect(error.message).to.contain('create its folder first');
    expect(error.path).to.equal(file);
  });
});
