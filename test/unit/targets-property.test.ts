// Property tests of every target type: random valid parameters survive
// format then parse unchanged, and random input to every parser ends in a
// value or the library's own INVALID_ARGUMENT error, never another failure.

import { expect } from 'chai';
import fc from 'fast-check';

import { DmError, DmErrorCode } from '../../src/ioctl/errors.js';
import { cacheType, type CacheParams } from '../../src/targets/cache.js';
import { cryptType, type CryptParams } from '../../src/targets/crypt.js';
import { delayType, type DelayParams } from '../../src/targets/delay.js';
import { flakeyType, type FlakeyParams } from '../../src/targets/flakey.js';
import { linearType, type LinearParams } from '../../src/targets/linear.js';
import { mirrorType, type MirrorParams } from '../../src/targets/mirror.js';
import { TARGET_TYPES } from '../../src/targets/registry.js';
import { snapshotMergeType, snapshotOriginType, snapshotType, type SnapshotParams } from '../../src/targets/snapshot.js';
import { stripedType, type StripedParams } from '../../src/targets/striped.js';
import { formatTableText, parseTable, type Sectors, type TargetType } from '../../src/targets/table.js';
import { THIN_POOL_FEATURES, thinPoolType, type ThinPoolParams } from '../../src/targets/thin-pool.js';
import { THIN_MAX_DEV_ID, thinType, type ThinParams } from '../../src/targets/thin.js';
import { verityType, type VerityParams } from '../../src/targets/verity.js';
import { writecacheType, type WritecacheParams } from '../../src/targets/writecache.js';
import { errorType, zeroType } from '../../src/targets/zero.js';

const U64_MAX = 0xffffffffffffffffn;
const UINT_MAX = 0xffffffff;
const RUNS = { numRuns: 300 };

const device = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 0, max: 1048575 })).map(([major, minor]) => `${major}:${minor}`),
  fc.stringMatching(/^\/dev\/[a-z0-9/_-]{1,20}$/),
);
const sectorCount = fc.bigInt({ min: 0n, max: U64_MAX }).map((value) => value as Sectors);
const uint = fc.integer({ min: 0, max: UINT_MAX });
const word = fc.stringMatching(/^[a-z0-9_:.()-]{1,16}$/);
const bytes = (min: number, max: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: min, maxLength: max }).map((array) => Buffer.from(array));
const subset = <T>(items: readonly T[]): fc.Arbitrary<T[]> => fc.subarray([...items]);
const powerOfTwo = (minExponent: number, maxExponent: number): fc.Arbitrary<number> => fc.integer({ min: minExponent, max: maxExponent }).map((e) => 2 ** e);

const linearParams: fc.Arbitrary<LinearParams> = fc.record({ device, offset: sectorCount });

const stripedParams: fc.Arbitrary<StripedParams> = fc.record({
  chunkSize: fc.bigInt({ min: 1n, max: BigInt(UINT_MAX) }).map((value) => value as Sectors),
  stripes: fc.array(fc.record({ device, offset: sectorCount }), { minLength: 1, maxLength: 6 }),
});

const thinPoolParams: fc.Arbitrary<ThinPoolParams> = fc.record({
  metadataDev: device,
  dataDev: device,
  dataBlockSize: fc.bigInt({ min: 1n, max: 16384n }).map((n) => (n * 128n) as Sectors),
  lowWaterMark: fc.bigInt({ min: 0n, max: U64_MAX }),
  features: subset(THIN_POOL_FEATURES),
});

const thinParams: fc.Arbitrary<ThinParams> = fc.record(
  { poolDev: device, deviceId: fc.integer({ min: 0, max: THIN_MAX_DEV_ID }), externalOrigin: device },
  { requiredKeys: ['poolDev', 'deviceId'] },
);

const snapshotParams: fc.Arbitrary<SnapshotParams> = fc.record({
  origin: device,
  cowDevice: device,
  store: fc.constantFrom('P' as const, 'PO' as const, 'N' as const),
  chunkSize: powerOfTwo(0, 31).map((n) => BigInt(n) as Sectors),
  features: fc.constantFrom([], ['discard_zeroes_cow' as const], ['discard_zeroes_cow' as const, 'discard_passdown_origin' as const]),
});

const cryptParams: fc.Arbitrary<CryptParams> = fc.record({
  cipher: fc.constantFrom('aes-xts-plain64', 'aes-cbc-essiv:sha256', 'capi:xts(aes)-plain64', 'cipher_null-ecb'),
  key: fc.oneof(
    bytes(1, 64).map((key) => ({ kind: 'hex' as const, key })),
    fc.record({
      kind: fc.constant('keyring' as const),
      keySize: fc.integer({ min: 1, max: 512 }),
      keyType: fc.constantFrom('logon' as const, 'user' as const, 'encrypted' as const, 'trusted' as const),
      description: fc.stringMatching(/^[a-z0-9_:.-]{1,24}$/),
    }),
    fc.constant({ kind: 'none' as const }),
  ),
  ivOffset: sectorCount,
  device,
  offset: sectorCount,
  options: fc.record(
    {
      allowDiscards: fc.constant(true as const),
      sameCpuCrypt: fc.constant(true as const),
      submitFromCryptCpus: fc.constant(true as const),
      noReadWorkqueue: fc.constant(true as const),
      noWriteWorkqueue: fc.constant(true as const),
      integrity: fc.record({ bytes: fc.integer({ min: 1, max: 64 }), type: fc.constantFrom('aead', 'hmac(sha256)') }),
      sectorSize: powerOfTwo(9, 12),
      ivLargeSectors: fc.constant(true as const),
    },
    { requiredKeys: [] },
  ),
});

const verityParams: fc.Arbitrary<VerityParams> = fc.record({
  version: fc.constantFrom(0 as const, 1 as const),
  dataDevice: device,
  hashDevice: device,
  dataBlockSize: powerOfTwo(9, 12),
  hashBlockSize: powerOfTwo(9, 12),
  dataBlocks: fc.bigInt({ min: 1n, max: U64_MAX }),
  hashStartBlock: fc.bigInt({ min: 0n, max: U64_MAX }),
  algorithm: fc.constantFrom('sha256', 'sha1', 'sha512'),
  rootDigest: bytes(1, 64),
  salt: bytes(0, 32),
  options: fc.constantFrom([], ['ignore_zero_blocks'], ['restart_on_corruption', 'check_at_most_once']),
});

const flakeyParams: fc.Arbitrary<FlakeyParams> = fc
  .record(
    {
      device,
      offset: sectorCount,
      upInterval: uint,
      downInterval: uint,
      writes: fc.constantFrom('drop_writes' as const, 'error_writes' as const),
      corruptBioByte: fc.record({
        nthByte: fc.integer({ min: 1, max: UINT_MAX }),
        direction: fc.constantFrom('r' as const, 'w' as const),
        value: fc.integer({ min: 0, max: 255 }),
        flags: uint,
      }),
    },
    { requiredKeys: ['device', 'offset', 'upInterval', 'downInterval'] },
  )
  .filter((params) => params.upInterval > 0 || params.downInterval > 0)
  .filter((params) => params.writes === undefined || params.corruptBioByte?.direction !== 'w');

const delayClass = fc.record({ device, offset: sectorCount, delayMs: uint });
const delayParams: fc.Arbitrary<DelayParams> = fc.oneof(
  fc.record({ read: delayClass }),
  fc.record({ read: delayClass, write: delayClass }),
  fc.record({ read: delayClass, write: delayClass, flush: delayClass }),
);

const cacheParams: fc.Arbitrary<CacheParams> = fc.record(
  {
    metadataDevice: device,
    cacheDevice: device,
    originDevice: device,
    blockSize: fc.bigInt({ min: 1n, max: 32768n }).map((n) => (n * 64n) as Sectors),
    metadata2: fc.constant(true as const),
    ioMode: fc.constantFrom('writeback' as const, 'writethrough' as const, 'passthrough' as const),
    noDiscardPassdown: fc.constant(true as const),
    policy: fc.constantFrom('smq', 'mq', 'cleaner'),
    policyArgs: fc.array(fc.tuple(word, fc.nat().map(String)), { maxLength: 3 }).map((pairs) => pairs.flat()),
  },
  { requiredKeys: ['metadataDevice', 'cacheDevice', 'originDevice', 'blockSize', 'policy', 'policyArgs'] },
);

const writecacheParams: fc.Arbitrary<WritecacheParams> = fc.record({
  mode: fc.constantFrom('p' as const, 's' as const),
  originDevice: device,
  cacheDevice: device,
  blockSize: powerOfTwo(9, 12),
  options: fc.record(
    {
      startSector: sectorCount,
      highWatermark: fc.integer({ min: 0, max: 100 }),
      lowWatermark: fc.integer({ min: 0, max: 100 }),
      writebackJobs: uint,
      autocommitBlocks: uint,
      autocommitTimeMs: uint,
      maxAgeMs: uint,
      cleaner: fc.constant(true as const),
      fua: fc.boolean(),
      metadataOnly: fc.constant(true as const),
      pauseWritebackMs: uint,
    },
    { requiredKeys: [] },
  ),
});

const mirrorParams: fc.Arbitrary<MirrorParams> = fc.record({
  log: fc.oneof(
    fc.record(
      { type: fc.constant('core' as const), regionSize: fc.bigInt({ min: 1n, max: BigInt(UINT_MAX) }).map((n) => n as Sectors), sync: fc.constantFrom('sync' as const, 'nosync' as const) },
      { requiredKeys: ['type', 'regionSize'] },
    ),
    fc.record(
      { type: fc.constant('disk' as const), device, regionSize: fc.bigInt({ min: 1n, max: BigInt(UINT_MAX) }).map((n) => n as Sectors), sync: fc.constantFrom('sync' as const, 'nosync' as const) },
      { requiredKeys: ['type', 'device', 'regionSize'] },
    ),
  ),
  mirrors: fc.array(fc.record({ device, offset: sectorCount }), { minLength: 2, maxLength: 9 }),
  features: subset(['handle_errors', 'keep_log'] as const),
});

const noParams = fc.constant({} as Record<string, never>);

const cases: [TargetType<unknown, unknown>, fc.Arbitrary<unknown>][] = [
  [linearType, linearParams],
  [stripedType, stripedParams],
  [zeroType, noParams],
  [errorType, noParams],
  [thinPoolType, thinPoolParams],
  [thinType, thinParams],
  [snapshotType, snapshotParams],
  [snapshotMergeType, snapshotParams],
  [snapshotOriginType, fc.record({ origin: device })],
  [cryptType, cryptParams],
  [verityType, verityParams],
  [flakeyType, flakeyParams],
  [delayType, delayParams],
  [cacheType, cacheParams],
  [writecacheType, writecacheParams],
  [mirrorType, mirrorParams],
] as [TargetType<unknown, unknown>, fc.Arbitrary<unknown>][];

/** Words that target lines use, so random input often gets deep into a parser. */
const token = fc.oneof(
  fc.constantFrom('-', '0', '1', '2', '3', '8', '128', '1/2', '7:0', '7:1', '/dev/x', 'Fail', 'Error', 'Invalid', 'Merge', 'failed', 'rw', 'ro', 'P', 'PO', 'N', 'V', 'C', 'A', 'AD', 'core', 'disk', 'sync', 'smq', 'p', 's'),
  fc.constantFrom(...THIN_POOL_FEATURES, 'discard_passdown', 'queue_if_no_space', 'needs_check', 'out_of_data_space', 'discard_zeroes_cow', 'drop_writes', 'corrupt_bio_byte', 'handle_errors', 'writeback', 'metadata2', 'sha256', 'aes-xts-plain64', 'allow_discards', 'sector_size:4096', 'integrity:28:aead', 'high_watermark', 'cleaner', 'fua'),
  fc.bigInt({ min: 0n, max: 1n << 70n }).map(String),
  fc.string({ maxLength: 6 }),
);
const garbage = fc.oneof(fc.string({ maxLength: 80 }), fc.array(token, { maxLength: 24 }).map((words) => words.join(' ')));

function expectOwnError(run: () => unknown): unknown {
  try {
    return run();
  } catch (error) {
    expect(error).to.be.instanceOf(DmError);
    expect((error as DmError).code).to.equal(DmErrorCode.INVALID_ARGUMENT);
    return undefined;
  }
}

describe('target property tests', function () {
  it('every registered type has a case', function () {
    expect(cases.map(([type]) => type.name).sort()).to.deep.equal(TARGET_TYPES.map((type) => type.name).sort());
  });

  for (const [type, params] of cases) {
    it(`${type.name} params round-trip`, function () {
      fc.assert(
        fc.property(params, (value) => {
          expect(type.parseParams(type.formatParams(value))).to.deep.equal(value);
        }),
        RUNS,
      );
    });

    it(`${type.name} table line survives extra spaces`, function () {
      fc.assert(
        fc.property(params, (value) => {
          const line = ` ${type.formatParams(value).split(' ').join('   ')} \n`;
          expect(type.parseParams(line)).to.deep.equal(value);
        }),
        { numRuns: 50 },
      );
    });

    it(`${type.name} table parser on garbage`, function () {
      fc.assert(
        fc.property(garbage, (text) => {
          const parsed = expectOwnError(() => type.parseParams(text));
          // Whatever parses must describe the same table when written again.
          if (parsed !== undefined) expect(type.parseParams(type.formatParams(parsed))).to.deep.equal(parsed);
        }),
        RUNS,
      );
    });

    it(`${type.name} status parser on garbage`, function () {
      fc.assert(
        fc.property(garbage, (text) => {
          expectOwnError(() => type.parseStatus(text));
        }),
        RUNS,
      );
    });
  }

  it('table text round-trips', function () {
    const target = fc.record({ length: fc.bigInt({ min: 1n, max: 1n << 40n }), params: linearParams });
    fc.assert(
      fc.property(fc.array(target, { minLength: 1, maxLength: 8 }), (targets) => {
        let start = 0n;
        const table = targets.map(({ length, params }) => {
          const spec = { start, length, type: 'linear', params: linearType.formatParams(params) };
          start += length;
          return spec;
        });
        expect(parseTable(`${formatTableText(table)}\n`)).to.deep.equal(table);
      }),
      RUNS,
    );
  });

  it('table parser on garbage', function () {
    fc.assert(
      fc.property(fc.array(garbage, { maxLength: 4 }), (lines) => {
        expectOwnError(() => parseTable(lines.join('\n')));
      }),
      RUNS,
    );
  });
});
