// The devicemapper driver's pure parts: options, layer ids, the free-space
// guard, recovery planning and the aufs and overlay mount data.

import { expect } from 'chai';

import {
  aufsMountData,
  checkLayerId,
  checkPoolSpace,
  GraphDriverErrorCode,
  humanSize,
  overlayMountData,
  parseDeviceSetOptions,
  planRecovery,
  type DeviceRecord,
} from '../../src/graphdriver/index.js';
import { thinTable } from '../../src/graphdriver/devicemapper/tables.js';
import { parseThinPoolStatus } from '../../src/targets/thin-pool.js';

function healthy(line: string) {
  const status = parseThinPoolStatus(line);
  if (status.state !== 'ok') throw new Error(`status ${line} did not parse as healthy`);
  return status;
}

function thrownCode(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('devicemapper options', function () {
  it('defaults follow Docker', function () {
    const options = parseDeviceSetOptions([]);
    expect(options.baseSize).to.equal(10737418240n);
    expect(options.loopDataSize).to.equal(107374182400n);
    expect(options.loopMetadataSize).to.equal(2147483648n);
    expect(options.blockSizeSectors).to.equal(128n);
    expect(options.minFreeSpacePercent).to.equal(10);
    expect(options.warnings).to.deep.equal([]);
  });

  it('sizes use binary units', function () {
    const options = parseDeviceSetOptions(['dm.basesize=64M', 'dm.loopdatasize=1GiB', 'dm.blocksize=512K']);
    expect(options.baseSize).to.equal(67108864n);
    expect(options.loopDataSize).to.equal(1073741824n);
    expect(options.blockSizeSectors).to.equal(1024n);
  });

  it('partial sector size is rejected', function () {
    expect(thrownCode(() => parseDeviceSetOptions(['dm.basesize=1000']))).to.equal(GraphDriverErrorCode.INVALID_OPTION);
  });

  it('unknown option is rejected', function () {
    expect(thrownCode(() => parseDeviceSetOptions(['dm.nosuch=1']))).to.equal(GraphDriverErrorCode.INVALID_OPTION);
  });

  it('oversized metadata file warns', function () {
    // 33292800 sectors of 512 bytes is the most a pool uses; 20 GiB is more.
    const options = parseDeviceSetOptions(['dm.loopmetadatasize=20G']);
    expect(options.warnings).to.have.length(1);
    expect(options.warnings[0]).to.contain('17045913600');
  });

  it('base table covers whole size', function () {
    // 10 GiB / 512 = 20971520 sectors.
    const table = thinTable(10737418240n / 512n, '253:0', 1);
    expect(`${table.start} ${table.length} ${table.type} ${table.params}`).to.equal('0 20971520 thin 253:0 1');
  });

  it('humanSize matches docker info', function () {
    expect(humanSize(65536)).to.equal('65.54 kB');
    expect(humanSize(107374182400n)).to.equal('107.4 GB');
  });
});

describe('layer id checks', function () {
  for (const id of ['', '.', '..', '../x', 'a/b', '/abs', '-x', 'a\0b', 'x'.repeat(97)]) {
    it(`rejects ${JSON.stringify(id.slice(0, 12))}`, function () {
      expect(thrownCode(() => checkLayerId(id))).to.equal(GraphDriverErrorCode.INVALID_ID);
    });
  }

  it('accepts Docker ids', function () {
    expect(() => checkLayerId(`${'a'.repeat(64)}-init`)).not.to.throw();
  });
});

describe('thin pool space guard', function () {
  const line = '37 1000/524288 1477379/1638400 - rw discard_passdown queue_if_no_space -';

  it('rejects below ten percent', function () {
    // 1638400 - 1477379 = 161021 free blocks, 10 % of 1638400 is 163840.
    let error: { code?: string; free?: bigint; required?: bigint } = {};
    try {
      checkPoolSpace(healthy(line), 10, 'pool');
    } catch (caught) {
      error = caught as typeof error;
    }
    expect(error.code).to.equal(GraphDriverErrorCode.POOL_LOW_ON_SPACE);
    expect(error.free).to.equal(161021n);
    expect(error.required).to.equal(163840n);
  });

  it('accepts exactly ten percent free', function () {
    expect(() => checkPoolSpace(healthy('37 1000/524288 1474560/1638400 - rw discard_passdown queue_if_no_space -'), 10, 'pool')).not.to.throw();
  });

  it('zero percent disables the guard', function () {
    expect(() => checkPoolSpace(healthy(line), 0, 'pool')).not.to.throw();
  });

  it('out of data space always rejects', function () {
    const full = healthy('37 1000/524288 1638400/1638400 - out_of_data_space discard_passdown queue_if_no_space -');
    expect(thrownCode(() => checkPoolSpace(full, 0, 'pool'))).to.equal(GraphDriverErrorCode.POOL_OUT_OF_DATA_SPACE);
  });

  it('metadata shortage rejects', function () {
    // 524288 - 480000 = 44288 free, below the 52429 that 10 % requires.
    const metadataFull = healthy('37 480000/524288 10/1638400 - rw discard_passdown queue_if_no_space -');
    expect(thrownCode(() => checkPoolSpace(metadataFull, 10, 'pool'))).to.equal(GraphDriverErrorCode.POOL_LOW_ON_SPACE);
  });
});

describe('recovery planning', function () {
  const record = (deviceId: number, transactionId: number): DeviceRecord => ({
    device_id: deviceId,
    size: 1 << 20,
    transaction_id: transactionId,
    initialized: true,
  });

  it('reports devices beyond the pool', function () {
    const devices = new Map([
      ['', record(0, 1)],
      ['abc', record(4, 5)],
      ['def', record(5, 6)],
    ]);
    const plan = planRecovery(5, undefined, devices);
    expect(plan.lost).to.deep.equal([{ hash: 'def', deviceId: 5 }]);
    expect(plan.rollback).to.equal(undefined);
  });

  it('rolls back an open create', function () {
    const devices = new Map([['abc', record(4, 5)], ['new', record(7, 6)]]);
    const plan = planRecovery(5, { open_transaction_id: 6, device_hash: 'new', device_id: 7 }, devices);
    expect(plan.rollback).to.deep.equal({ hash: 'new', deviceId: 7, dropRecord: true });
    expect(plan.lost).to.deep.equal([]);
  });

  it('keeps a record of another id', function () {
    const devices = new Map([['abc', record(4, 5)]]);
    const plan = planRecovery(5, { open_transaction_id: 6, device_hash: 'abc', device_id: 9 }, devices);
    expect(plan.rollback).to.deep.equal({ hash: 'abc', deviceId: 9, dropRecord: false });
  });

  it('committed transaction needs nothing', function () {
    const devices = new Map([['abc', record(4, 6)]]);
    const plan = planRecovery(6, { open_transaction_id: 6, device_hash: 'abc', device_id: 4 }, devices);
    expect(plan.rollback).to.equal(undefined);
    expect(plan.lost).to.deep.equal([]);
  });

  it('pool ahead of the driver rejects', function () {
    expect(thrownCode(() => planRecovery(9, { open_transaction_id: 6, device_hash: '', device_id: 1 }, new Map()))).to.equal(
      GraphDriverErrorCode.TRANSACTION_ID_MISMATCH,
    );
  });
});

describe('union mount data', function () {
  it('overlay lists nearest lower first', function () {
    expect(overlayMountData(['/r/b/diff', '/r/a/diff'], '/r/c/diff', '/r/c/work')).to.equal(
      'lowerdir=/r/b/diff:/r/a/diff,upperdir=/r/c/diff,workdir=/r/c/work',
    );
  });

  it('aufs marks lower branches read-only', function () {
    expect(aufsMountData('/r/diff/c', ['/r/diff/b', '/r/diff/a'])).to.equal('br:/r/diff/c=rw:/r/diff/b=ro+wh:/r/diff/a=ro+wh,dio');
  });
});
