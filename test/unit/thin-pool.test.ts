// ThinPool against the fake kernel: usage and the free-space guard,
// transaction id checks, and thin id errors from pool messages. The status
// lines are the ones the cases in the public reports quote from real pools.

import { constants as osConstants } from 'node:os';

import { expect } from 'chai';

import { DeviceMapper } from '../../src/dm/client.js';
import { DmError } from '../../src/ioctl/errors.js';
import { POOL_LOW_ON_SPACE, POOL_OUT_OF_DATA_SPACE, PoolSpaceError, TRANSACTION_ID_MISMATCH, TransactionIdMismatchError } from '../../src/thin/errors.js';
import { ThinPool } from '../../src/thin/pool.js';
import { catchDmError, FakeKernel } from './fake-kernel.js';

const { EEXIST, EINVAL, ENODATA } = osConstants.errno;
const POOL_TABLE = { start: 0n, length: 104857600n, type: 'thin-pool', params: '7:1 7:0 128 32768 1 skip_block_zeroing' };
const DOCKER_STATUS = '37 1000/524288 1477379/1638400 - rw discard_passdown queue_if_no_space -';

describe('ThinPool on fake kernel', function () {
  let kernel: FakeKernel;
  let dm: DeviceMapper;
  let messages: string[];

  function openPool(status: string, reply: (message: string) => number | undefined = () => undefined): ThinPool {
    kernel = new FakeKernel();
    messages = [];
    kernel.addDevice('pool', { table: [POOL_TABLE], statusLines: [status] });
    kernel.onMessage = (_device, _sector, message) => {
      messages.push(message);
      return reply(message);
    };
    dm = DeviceMapper.open({ controlPath: '/dev/null', libc: kernel });
    return ThinPool.open(dm, 'pool');
  }

  afterEach(function () {
    dm?.close();
  });

  it('open reads table parameters', function () {
    const pool = openPool(DOCKER_STATUS);
    expect(pool.params).to.deep.equal({ metadataDev: '7:1', dataDev: '7:0', dataBlockSize: 128n, lowWaterMark: 32768n, features: ['skip_block_zeroing'] });
  });

  it('usage of Docker pool', function () {
    const usage = openPool(DOCKER_STATUS).usage();
    expect(usage.dataFree).to.equal(161021n);
    expect(usage.dataTotal).to.equal(1638400n);
    expect(usage.metadataFree).to.equal(523288n);
  });

  it('guard rejects low pool', function () {
    const pool = openPool(DOCKER_STATUS);
    const error = catchDmError(() => pool.createThin(1, { guard: { minFreeDataPercent: 10 } }));
    expect(error).to.be.instanceOf(PoolSpaceError);
    expect(error.code).to.equal(POOL_LOW_ON_SPACE);
    expect((error as PoolSpaceError).free).to.equal(161021n);
    expect((error as PoolSpaceError).required).to.equal(163840n);
    expect(messages).to.deep.equal([]);
  });

  it('guard passes exact free space', function () {
    const pool = openPool('37 1000/524288 1474560/1638400 - rw discard_passdown queue_if_no_space -');
    expect(pool.createThin(1, { guard: { minFreeDataPercent: 10 } })).to.equal(1);
    expect(messages).to.deep.equal(['create_thin 1']);
  });

  it('guard checks metadata space', function () {
    const pool = openPool('37 500000/524288 0/1638400 - rw discard_passdown queue_if_no_space -');
    const error = catchDmError(() => pool.createThin(1, { guard: { minFreeMetadataPercent: 10 } }));
    expect((error as PoolSpaceError).resource).to.equal('metadata');
  });

  it('out of data space rejects', function () {
    const pool = openPool('37 1000/524288 1638400/1638400 - out_of_data_space discard_passdown queue_if_no_space -');
    const error = catchDmError(() => pool.createThin(1));
    expect(error.code).to.equal(POOL_OUT_OF_DATA_SPACE);
    expect(messages).to.deep.equal([]);
  });

  it('transaction id mismatch before sending', function () {
    const pool = openPool('4542 1000/524288 0/1638400 - rw discard_passdown queue_if_no_space -');
    const error = catchDmError(() => pool.setTransactionId(4544n, 4545n));
    expect(error).to.be.instanceOf(TransactionIdMismatchError);
    expect(error.code).to.equal(TRANSACTION_ID_MISMATCH);
    expect((error as TransactionIdMismatchError).expected).to.equal(4544n);
    expect((error as TransactionIdMismatchError).actual).to.equal(4542n);
    expect(messages).to.deep.equal([]);
  });

  it('transaction id EINVAL re-reads status', function () {
    // The pool's id moves between the check and the message, as after a crash of another writer.
    let status = '4544 1000/524288 0/1638400 - rw discard_passdown queue_if_no_space -';
    const pool = openPool(status, () => {
      status = '4542 1000/524288 0/1638400 - rw discard_passdown queue_if_no_space -';
      kernel.devices.get('pool')!.statusLines = [status];
      return -EINVAL;
    });
    const error = catchDmError(() => pool.setTransactionId(4544n, 4545n));
    expect((error as TransactionIdMismatchError).actual).to.equal(4542n);
    expect(messages).to.deep.equal(['set_transaction_id 4544 4545']);
  });

  it('transaction id sends message', function () {
    const pool = openPool('5 1000/524288 0/1638400 - rw discard_passdown queue_if_no_space -');
    pool.setTransactionId(5n, 6n);
    expect(messages).to.deep.equal(['set_transaction_id 5 6']);
  });

  it('createThin retries next id', function () {
    const pool = openPool(DOCKER_STATUS, (message) => (message === 'create_thin 1' ? -EEXIST : undefined));
    expect(pool.createThin()).to.equal(2);
    expect(messages).to.deep.equal(['create_thin 1', 'create_thin 2']);
  });

  it('createThin with id reports EEXIST', function () {
    const pool = openPool(DOCKER_STATUS, () => -EEXIST);
    const error = catchDmError(() => pool.createThin(1));
    expect(error.code).to.equal('EEXIST');
    expect(error.message).to.include('id 1 already exists');
  });

  it('deleteThin ignores missing id', function () {
    const pool = openPool(DOCKER_STATUS, () => -ENODATA);
    pool.deleteThin(10, { ignoreMissing: true });
    expect(messages).to.deep.equal(['delete 10']);
  });

  it('deleteThin reports missing id', function () {
    const pool = openPool(DOCKER_STATUS, () => -ENODATA);
    const error = catchDmError(() => pool.deleteThin(10));
    expect(error.code).to.equal('ENODATA');
    expect(error.message).to.include('id 10 does not exist');
  });

  it('read-only pool refuses volumes', function () {
    const pool = openPool('5 1000/524288 0/1638400 - ro discard_passdown queue_if_no_space -');
    expect(catchDmError(() => pool.createThin(1)).message).to.include('read-only');
  });

  it('open rejects non-pool device', function () {
    kernel = new FakeKernel();
    kernel.addDevice('vol', { table: [{ start: 0n, length: 8n, type: 'zero', params: '' }] });
    dm = DeviceMapper.open({ controlPath: '/dev/null', libc: kernel });
    const error = catchDmError(() => ThinPool.open(dm, 'vol'));
    expect(error).to.be.instanceOf(DmError);
    expect(error.message).to.include('not a thin pool');
  });
});
