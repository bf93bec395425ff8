// The parts of the thin-pool layer that need no loop devices.

import fs from 'node:fs';
import path from 'node:path';

import { expect } from 'chai';

import { DmErrorCode } from '../../src/ioctl/errors.js';
import { DEFAULT_DATA_BLOCK_SIZE, DEFAULT_LOW_WATER_MARK, ensureSparseFile } from '../../src/thin/pool.js';
import { catchDmError, makeTempDir } from './fake-kernel.js';

describe('thin pool defaults', function () {
  it('data block is 64 KiB', function () {
    expect(DEFAULT_DATA_BLOCK_SIZE).to.equal(128n);
  });

  it('low water mark is 32768 blocks', function () {
    expect(DEFAULT_LOW_WATER_MARK).to.equal(32768n);
  });
});

describe('ensureSparseFile', function () {
  let dir: string;

  beforeEach(function () {
    dir = makeTempDir('sparse');
  });

  afterEach(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates file of given size', function () {
    const file = path.join(dir, 'data.img');
    expect(ensureSparseFile(file, 2147483648)).to.equal(true);
    expect(fs.statSync(file).size).to.equal(2147483648);
  });

  it('leaves existing file alone', function () {
    const file = path.join(dir, 'data.img');
    fs.writeFileSync(file, 'keep');
    expect(ensureSparseFile(file, 1024)).to.equal(false);
    expect(fs.readFileSync(file, 'utf8')).to.equal('keep');
  });

  it('rejects size not whole sectors', function () {
    const file = path.join(dir, 'data.img');
    const error = catchDmError(() => ensureSparseFile(file, 1000));
    expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
    expect(fs.existsSync(file)).to.equal(false);
  });
});
