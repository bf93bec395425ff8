// Table lines and target parameters: building, parsing and status lines of
// the linear, thin-pool and thin targets.

import { expect } from 'chai';

import { DmErrorCode } from '../../src/ioctl/errors.js';
import { linearTarget, parseLinearParams } from '../../src/targets/linear.js';
import { bytesToSectors, parseTable, parseTableLine, splitArgs } from '../../src/targets/table.js';
import { parseThinPoolParams, parseThinPoolStatus, thinPoolTarget } from '../../src/targets/thin-pool.js';
import { parseThinParams, parseThinStatus, thinTarget } from '../../src/targets/thin.js';
import { DEFAULT_DATA_BLOCK_SIZE, DEFAULT_LOW_WATER_MARK } from '../../src/thin/pool.js';
import { catchDmError } from './fake-kernel.js';

describe('thin-pool table', function () {
  it('builder writes metadata device first', function () {
    // Docker's loop pool: data on loop0 (7:0), metadata on loop1 (7:1).
    const target = thinPoolTarget(0n, 209715200n, {
      metadataDev: '7:1',
      dataDev: '7:0',
      dataBlockSize: DEFAULT_DATA_BLOCK_SIZE,
      lowWaterMark: DEFAULT_LOW_WATER_MARK,
      features: ['skip_block_zeroing'],
    });
    expect(target).to.deep.equal({
      start: 0n,
      length: 209715200n,
      type: 'thin-pool',
      params: '7:1 7:0 128 32768 1 skip_block_zeroing',
    });
  });

  it('builder writes zero feature count', function () {
    const target = thinPoolTarget(0n, 2048n, { metadataDev: '7:1', dataDev: '7:0', dataBlockSize: 128n, lowWaterMark: 0n, features: [] });
    expect(target.params).to.equal('7:1 7:0 128 0 0');
  });

  const badBlockSizes = [64n, 100n, 2097280n];
  for (const blockSize of badBlockSizes) {
    it(`builder rejects block size ${blockSize}`, function () {
      const error = catchDmError(() =>
        thinPoolTarget(0n, 2048n, { metadataDev: '7:1', dataDev: '7:0', dataBlockSize: blockSize, lowWaterMark: 0n, features: [] }),
      );
      expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
      expect(error.message).to.include(String(blockSize));
    });
  }

  it('builder accepts 1 GiB blocks', function () {
    const target = thinPoolTarget(0n, 2097152n, { metadataDev: '7:1', dataDev: '7:0', dataBlockSize: 2097152n, lowWaterMark: 0n, features: [] });
    expect(target.params).to.equal('7:1 7:0 2097152 0 0');
  });

  it('parses pool line with newline', function () {
    const line = parseTableLine('0 104857600 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing\n');
    expect(line).to.deep.equal({ start: 0n, length: 104857600n, type: 'thin-pool', params: '7:1 7:0 128 32768 1 skip_block_zeroing' });
    expect(parseThinPoolParams(line.params)).to.deep.equal({
      metadataDev: '7:1',
      dataDev: '7:0',
      dataBlockSize: 128n,
      lowWaterMark: 32768n,
      features: ['skip_block_zeroing'],
    });
  });

  it('parses params without feature count', function () {
    expect(parseThinPoolParams('7:1 7:0 128 32768').features).to.deep.equal([]);
  });

  it('rejects feature count mismatch', function () {
    const error = catchDmError(() => parseThinPoolParams('7:1 7:0 128 32768 2 skip_block_zeroing'));
    expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
    expect(error.message).to.include('feature count');
  });

  it('rejects unknown feature', function () {
    expect(catchDmError(() => parseThinPoolParams('7:1 7:0 128 32768 1 turbo')).message).to.include('turbo');
  });

  it('rejects too few arguments', function () {
    expect(catchDmError(() => parseThinPoolParams('7:1 7:0 128')).code).to.equal(DmErrorCode.INVALID_ARGUMENT);
  });
});

describe('thin-pool status', function () {
  it('parses healthy pool', function () {
    expect(parseThinPoolStatus('37 1000/524288 1477379/1638400 - rw discard_passdown queue_if_no_space -')).to.deep.equal({
      state: 'ok',
      transactionId: 37n,
      usedMetadataBlocks: 1000n,
      totalMetadataBlocks: 524288n,
      usedDataBlocks: 1477379n,
      totalDataBlocks: 1638400n,
      heldMetadataRoot: undefined,
      mode: 'rw',
      discard: 'discard_passdown',
      noSpace: 'queue_if_no_space',
      needsCheck: false,
      metadataLowWaterMark: undefined,
    });
  });

  it('parses full pool fields', function () {
    const status = parseThinPoolStatus('5 10/100 200/200 77 out_of_data_space ignore_discard error_if_no_space needs_check 512');
    expect(status).to.deep.include({
      heldMetadataRoot: 77n,
      mode: 'out_of_data_space',
      discard: 'ignore_discard',
      noSpace: 'error_if_no_space',
      needsCheck: true,
      metadataLowWaterMark: 512n,
    });
  });

  it('parses Fail', function () {
    expect(parseThinPoolStatus('Fail')).to.deep.equal({ state: 'Fail' });
  });

  it('parses Error', function () {
    expect(parseThinPoolStatus('Error')).to.deep.equal({ state: 'Error' });
  });

  it('rejects field without slash', function () {
    const error = catchDmError(() => parseThinPoolStatus('37 1000 1477379/1638400 - rw discard_passdown queue_if_no_space -'));
    expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
  });

  it('rejects unknown mode', function () {
    expect(catchDmError(() => parseThinPoolStatus('37 1/2 3/4 - rx discard_passdown queue_if_no_space -')).message).to.include('rx');
  });

  it('rejects short status', function () {
    expect(catchDmError(() => parseThinPoolStatus('37 1/2 3/4 - rw')).code).to.equal(DmErrorCode.INVALID_ARGUMENT);
  });
});

describe('thin target', function () {
  it('builder writes pool and id', function () {
    expect(thinTarget(0n, 20971520n, { poolDev: '253:0', deviceId: 1 }).params).to.equal('253:0 1');
  });

  it('builder appends external origin', function () {
    expect(thinTarget(0n, 8n, { poolDev: '253:0', deviceId: 1, externalOrigin: '7:2' }).params).to.equal('253:0 1 7:2');
  });

  it('parses external origin', function () {
    expect(parseThinParams('253:0 7 7:2')).to.deep.equal({ poolDev: '253:0', deviceId: 7, externalOrigin: '7:2' });
  });

  it('rejects four arguments', function () {
    expect(catchDmError(() => parseThinParams('253:0 7 7:2 x')).code).to.equal(DmErrorCode.INVALID_ARGUMENT);
  });

  const statuses: [string, unknown][] = [
    ['2048 4095', { state: 'ok', mappedSectors: 2048n, highestMappedSector: 4095n }],
    ['0 -', { state: 'ok', mappedSectors: 0n, highestMappedSector: undefined }],
    ['Fail', { state: 'Fail' }],
    ['-', { state: 'unbound' }],
  ];
  for (const [line, expected] of statuses) {
    it(`parses status "${line}"`, function () {
      expect(parseThinStatus(line)).to.deep.equal(expected);
    });
  }
});

describe('linear target', function () {
  it('builder writes device and offset', function () {
    expect(linearTarget(0n, 8n, { device: '8:1', offset: 2048n })).to.deep.equal({ start: 0n, length: 8n, type: 'linear', params: '8:1 2048' });
  });

  it('parses device and offset', function () {
    expect(parseLinearParams('8:1 2048')).to.deep.equal({ device: '8:1', offset: 2048n });
  });

  it('rejects one argument', function () {
    expect(catchDmError(() => parseLinearParams('8:1')).code).to.equal(DmErrorCode.INVALID_ARGUMENT);
  });
});

describe('table parsing', function () {
  it('collapses double spaces', function () {
    // Some targets print two spaces after the type name.
    const line = parseTableLine('0 204800 writeboost  251:0 251:3');
    expect(line.params).to.equal('251:0 251:3');
    expect(splitArgs(line.params)).to.deep.equal(['251:0', '251:3']);
  });

  it('parses multi-line table', function () {
    expect(parseTable('0 100 linear 8:1 0\n100 200 linear 8:2 0\n')).to.deep.equal([
      { start: 0n, length: 100n, type: 'linear', params: '8:1 0' },
      { start: 100n, length: 200n, type: 'linear', params: '8:2 0' },
    ]);
  });

  it('rejects gap', function () {
    const error = catchDmError(() => parseTable('0 100 linear 8:1 0\n150 50 linear 8:2 0'));
    expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
    expect(error.message).to.include('gap');
  });

  it('rejects overlap', function () {
    expect(catchDmError(() => parseTable('0 100 linear 8:1 0\n50 50 linear 8:2 0')).message).to.include('overlap');
  });

  it('rejects table not at sector 0', function () {
    expect(catchDmError(() => parseTable('8 100 linear 8:1 0')).code).to.equal(DmErrorCode.INVALID_ARGUMENT);
  });

  const badLines = ['x 100 linear 8:1 0', '0 0 linear 8:1 0', '0 100'];
  for (const line of badLines) {
    it(`rejects line "${line}"`, function () {
      expect(catchDmError(() => parseTableLine(line)).code).to.equal(DmErrorCode.INVALID_ARGUMENT);
    });
  }
});

describe('bytesToSectors', function () {
  it('converts whole sectors', function () {
    expect(bytesToSectors(1024)).to.equal(2n);
  });

  it('converts 100 GiB', function () {
    expect(bytesToSectors(107374182400n)).to.equal(209715200n);
  });

  const invalid = [500, 1000, 513, 0, -512];
  for (const bytes of invalid) {
    it(`rejects ${bytes} bytes`, function () {
      const error = catchDmError(() => bytesToSectors(bytes));
      expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
      expect(error.message).to.include(String(bytes));
    });
  }
});
