// Table lines and target parameters: building, parsing and status lines of
// the linear, thin-pool and thin targets.

import { expect } from 'chai';

import { DmErrorCode } from '../../src/ioctl/errors.js';
import { linearTarget, parseLinearParams } from '../../src/targets/linear.js';
import { bytesToSectors, bytesToSectorsFloor, formatTableText, parseTable, parseTableLine, sectors, splitArgs } from '../../src/targets/table.js';
import { parseThinPoolParams, parseThinPoolStatus, thinPoolTarget } from '../../src/targets/thin-pool.js';
import { parseThinParams, parseThinStatus, thinTarget } from '../../src/targets/thin.js';
import { DEFAULT_DATA_BLOCK_SIZE, DEFAULT_LOW_WATER_MARK } from '../../src/thin/pool.js';
import { cacheType } from '../../src/targets/cache.js';
import { cryptType } from '../../src/targets/crypt.js';
import { mirrorType } from '../../src/targets/mirror.js';
import { snapshotType } from '../../src/targets/snapshot.js';
import { stripedType } from '../../src/targets/striped.js';
import { verityType } from '../../src/targets/verity.js';
import { writecacheType } from '../../src/targets/writecache.js';
import { catchDmError } from './fake-kernel.js';

describe('thin-pool table', function () {
  it('builder writes metadata device first', function () {
    // Docker's loop pool: data on loop0 (7:0), metadata on loop1 (7:1).
    const target = thinPoolTarget(sectors(0), sectors(209715200n), {
      metadataDev: '7:1',
      dataDev: '7:0',
      dataBlockSize: sectors(DEFAULT_DATA_BLOCK_SIZE),
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
    const target = thinPoolTarget(sectors(0), sectors(2048), { metadataDev: '7:1', dataDev: '7:0', dataBlockSize: sectors(128), lowWaterMark: 0n, features: [] });
    expect(target.params).to.equal('7:1 7:0 128 0 0');
  });

  const badBlockSizes = [64n, 100n, 2097280n];
  for (const blockSize of badBlockSizes) {
    it(`builder rejects block size ${blockSize}`, function () {
      const error = catchDmError(() =>
        thinPoolTarget(sectors(0), sectors(2048), { metadataDev: '7:1', dataDev: '7:0', dataBlockSize: sectors(blockSize), lowWaterMark: 0n, features: [] }),
      );
      expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
      expect(error.message).to.include(String(blockSize));
    });
  }

  it('builder accepts 1 GiB blocks', function () {
    const target = thinPoolTarget(sectors(0), sectors(2097152), { metadataDev: '7:1', dataDev: '7:0', dataBlockSize: sectors(2097152), lowWaterMark: 0n, features: [] });
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
    expect(thinTarget(sectors(0), sectors(20971520), { poolDev: '253:0', deviceId: 1 }).params).to.equal('253:0 1');
  });

  it('builder appends external origin', function () {
    expect(thinTarget(sectors(0), sectors(8), { poolDev: '253:0', deviceId: 1, externalOrigin: '7:2' }).params).to.equal('253:0 1 7:2');
  });

  it('parses external origin', function () {
    expect(parseThinParams('253:0 7 7:2')).to.deep.equal({ poolDev: '253:0', deviceId: 7, externalOrigin: '7:2' });
  });

  it('rejects four arguments', function () {
    expect(catchDmError(() => parseThinParams('253:0 7 7:2 x')).code).to.equal(DmErrorCode.INVALID_ARGUMENT);
  });

  const statuses: [string, unknown][] = [
    ['2048 4095', { state: 'ok', mappedSectors: 2048n, highestMappedSector: 4095n }],
    ['0 -', { state: 'ok', mappedSectors: 0n }],
    ['Error', { state: 'Error' }],
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
    expect(linearTarget(sectors(0), sectors(8), { device: '8:1', offset: sectors(2048) })).to.deep.equal({ start: 0n, length: 8n, type: 'linear', params: '8:1 2048' });
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

describe('table model', function () {
  it('parses Docker loop pool line', function () {
    const line = parseTableLine('0 104857600 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing\n');
    expect(line.length).to.equal(104857600n);
    expect(parseThinPoolParams(line.params).features).to.deep.equal(['skip_block_zeroing']);
  });

  it('formats contiguous table', function () {
    const table = parseTable('0 100 linear 8:1 0\n100 200 linear 8:2 0\n');
    expect(formatTableText(table)).to.equal('0 100 linear 8:1 0\n100 200 linear 8:2 0');
  });

  it('format rejects gap', function () {
    const error = catchDmError(() => formatTableText([
      { start: 0n, length: 100n, type: 'zero', params: '' },
      { start: 150n, length: 50n, type: 'zero', params: '' },
    ]));
    expect(error.message).to.include('gap');
  });

  it('tolerates trailing spaces and newline', function () {
    expect(parseTable('0 8 zero  \n\n')).to.deep.equal([{ start: 0n, length: 8n, type: 'zero', params: '' }]);
  });
});

describe('sector sizes', function () {
  it('floor drops partial sector', function () {
    // A 513-byte file gives a 1-sector loop device (util-linux#722 behaviour of the loop driver).
    expect(bytesToSectorsFloor(513)).to.equal(1n);
  });

  it('floor of 100 GiB plus one', function () {
    expect(bytesToSectorsFloor(107374182401n)).to.equal(209715200n);
  });

  it('floor rejects under one sector', function () {
    const error = catchDmError(() => bytesToSectorsFloor(500, 'dataSize'));
    expect(error.message).to.include('dataSize 500');
  });

  it('exact conversion names the size', function () {
    expect(catchDmError(() => bytesToSectors(1000, 'metadataSize')).message).to.include('metadataSize 1000');
  });

  it('sectors rejects negative count', function () {
    expect(catchDmError(() => sectors(-1)).code).to.equal(DmErrorCode.INVALID_ARGUMENT);
  });
});

// Status lines for states the guest kernel cannot be driven into, written
// from the DMEMIT calls of the Linux 6.1 sources named in each module.
describe('status lines from kernel source', function () {
  it('thin-pool read-only needs_check', function () {
    // pool_status(): "%llu %llu/%llu %llu/%llu " then "- ", "ro ", discard, no-space, "needs_check ", threshold.
    const status = parseThinPoolStatus('3 210/2048 4096/4096 - ro no_discard_passdown error_if_no_space needs_check 1024 ');
    expect(status).to.deep.equal({
      state: 'ok',
      transactionId: 3n,
      usedMetadataBlocks: 210n,
      totalMetadataBlocks: 2048n,
      usedDataBlocks: 4096n,
      totalDataBlocks: 4096n,
      heldMetadataRoot: undefined,
      mode: 'ro',
      discard: 'no_discard_passdown',
      noSpace: 'error_if_no_space',
      needsCheck: true,
      metadataLowWaterMark: 1024n,
    });
  });

  it('thin-pool eight fields before 4.19', function () {
    const status = parseThinPoolStatus('0 10/100 0/200 - rw discard_passdown queue_if_no_space -');
    expect(status).to.deep.include({ state: 'ok', needsCheck: false, metadataLowWaterMark: undefined });
  });

  it('thin-pool Fail with trailing space', function () {
    expect(parseThinPoolStatus('Fail ')).to.deep.equal({ state: 'Fail' });
  });

  it('thin Fail', function () {
    expect(parseThinStatus('Fail')).to.deep.equal({ state: 'Fail' });
  });

  const snapshotStates: [string, unknown][] = [
    ['Invalid', { state: 'Invalid' }],
    ['Merge failed', { state: 'Merge failed' }],
    ['Overflow', { state: 'Overflow' }],
    ['Unknown', { state: 'Unknown' }],
    ['16/2048 16', { state: 'ok', allocatedSectors: 16n, totalSectors: 2048n, metadataSectors: 16n }],
  ];
  for (const [line, expected] of snapshotStates) {
    it(`snapshot status "${line}"`, function () {
      expect(snapshotType.parseStatus(line)).to.deep.equal(expected);
    });
  }

  it('snapshot rejects Merge alone', function () {
    expect(catchDmError(() => snapshotType.parseStatus('Merge')).code).to.equal(DmErrorCode.INVALID_ARGUMENT);
  });

  it('striped status with dead stripe', function () {
    // The layout the 6.1 kernel prints for a healthy set is "2 7:0 7:1 1 AA"; D marks a stripe with errors.
    expect(stripedType.parseStatus('2 7:0 7:1 1 AD')).to.deep.equal({ devices: ['7:0', '7:1'], health: ['A', 'D'] });
  });

  it('striped rejects health count', function () {
    expect(catchDmError(() => stripedType.parseStatus('2 7:0 7:1 1 A')).message).to.include('health');
  });

  it('verity corrupted status', function () {
    expect(verityType.parseStatus('C')).to.deep.equal({ verified: false });
  });

  it('verity FEC field dash', function () {
    expect(verityType.parseStatus('V -')).to.deep.equal({ verified: true, fecCorrected: null });
  });

  it('cache Fail', function () {
    expect(cacheType.parseStatus('Fail')).to.deep.equal({ state: 'Fail' });
  });

  it('cache Error', function () {
    expect(cacheType.parseStatus('Error')).to.deep.equal({ state: 'Error' });
  });

  it('mirror degraded leg', function () {
    // mirror_status(): "%d " count, "%s " devices, "%llu/%llu 1 %s " then the core log's "1 core".
    expect(mirrorType.parseStatus('2 7:0 7:1 3/16 1 DA 1 core')).to.deep.equal({
      devices: ['7:0', '7:1'],
      inSyncRegions: 3n,
      totalRegions: 16n,
      health: ['D', 'A'],
      log: ['core'],
    });
  });

  it('writecache target 1.5 status', function () {
    expect(writecacheType.parseStatus('-5 1024 1000 0')).to.deep.equal({ error: -5, totalBlocks: 1024n, freeBlocks: 1000n, writebackBlocks: 0n });
  });
});

describe('crypt key handling', function () {
  const key = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';

  it('parse error hides key', function () {
    const error = catchDmError(() => cryptType.parseParams(`aes-xts-plain64 ${key} 0 7:0 0 1 bogus_option`));
    expect(error.message).to.include('bogus_option');
    expect(error.message).not.to.include(key);
  });

  it('keyring key parses fields', function () {
    const params = cryptType.parseParams('aes-xts-plain64 :32:logon:dmioctl:test 0 7:0 0');
    expect(params.key).to.deep.equal({ kind: 'keyring', keySize: 32, keyType: 'logon', description: 'dmioctl:test' });
  });

  it('hex key parses to bytes', function () {
    const params = cryptType.parseParams(`aes-xts-plain64 ${key.toUpperCase()} 0 7:0 0`);
    expect(params.key).to.deep.equal({ kind: 'hex', key: Buffer.from(key, 'hex') });
  });
});
