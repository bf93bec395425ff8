// Crash recovery of the devicemapper graphdriver. A child process is killed
// (SIGKILL) at each step of create and remove. A new driver on the same root
// must then find every committed layer intact and no thin id without
// metadata, and the stored transaction id must equal the pool's.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { expect } from 'chai';

import { newDriver, openDeviceMapper, parseThinPoolStatus, type DeviceMapper, type Driver } from '../../src/index.js';
import { TEST_OPTIONS } from './graphdriver.test.js';
import { leftoverDevices, leftoverLoops, workFile } from './helpers.js';

const POOL = 'dmioctl-test-gd-pool';
const MODULE = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/graphdriver/index.js')).href;
const CHILD = `
const { newDriver } = await import(process.env.GD_MODULE);
const driver = await newDriver(process.env.GD_ROOT, { name: 'devicemapper', options: JSON.parse(process.env.GD_OPTIONS) });
const [operation, id, parent] = JSON.parse(process.env.GD_ARGS);
if (operation === 'create') await driver.create(id, parent);
else await driver.remove(id);
await driver.cleanup();
`;

/** Runs one driver operation in a child process that dies at `step`. */
function runChild(root: string, step: string, args: string[]): ReturnType<typeof spawnSync> {
  return spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], {
    env: { ...process.env, GD_MODULE: MODULE, GD_ROOT: root, GD_OPTIONS: JSON.stringify(TEST_OPTIONS), GD_ARGS: JSON.stringify(args), DM_GRAPHDRIVER_CRASH_AT: step },
    encoding: 'utf8',
  });
}

/** Thin ids of the stored records. */
function storedIds(root: string): Set<number> {
  const dir = path.join(root, 'devicemapper', 'metadata');
  const files = [path.join(dir, 'base'), ...fs.readdirSync(path.join(dir, 'layers')).map((name) => path.join(dir, 'layers', name))];
  return new Set(files.filter((file) => fs.existsSync(file)).map((file) => JSON.parse(fs.readFileSync(file, 'utf8')).device_id as number));
}

/** Ids up to `limit` the pool has without a record: `create_thin` of such an id fails with EEXIST. */
function orphanIds(dm: DeviceMapper, stored: Set<number>, limit: number): number[] {
  const orphans: number[] = [];
  for (let id = 0; id <= limit; id++) {
    if (stored.has(id)) continue;
    try {
      dm.message(POOL, 0, `create_thin ${id}`);
      dm.message(POOL, 0, `delete ${id}`);
    } catch (error) {
      if ((error as { code?: string }).code === 'EEXIST') orphans.push(id);
      else throw error;
    }
  }
  return orphans;
}

const CASES: { step: string; operation: 'create' | 'remove'; survives: boolean }[] = [
  { step: 'create:after-open-transaction', operation: 'create', survives: false },
  { step: 'create:after-create-snap', operation: 'create', survives: false },
  { step: 'create:after-register', operation: 'create', survives: false },
  { step: 'create:after-set-transaction-id', operation: 'create', survives: true },
  { step: 'create:after-close-transaction', operation: 'create', survives: true },
  { step: 'remove:after-deactivate', operation: 'remove', survives: true },
  { step: 'remove:after-open-transaction', operation: 'remove', survives: false },
  { step: 'remove:after-delete', operation: 'remove', survives: false },
  { step: 'remove:after-unregister', operation: 'remove', survives: false },
  { step: 'remove:after-set-transaction-id', operation: 'remove', survives: false },
];

describe('devicemapper graphdriver crash recovery', function () {
  let root: string;
  let dm: DeviceMapper;
  let driver: Driver | undefined;

  beforeEach(async function () {
    root = workFile('gd-crash-root');
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(root, { recursive: true });
    dm = openDeviceMapper();
  });

  afterEach(async function () {
    await driver?.cleanup().catch(() => undefined);
    driver = undefined;
    expect(leftoverDevices(dm)).to.deep.equal([]);
    expect(leftoverLoops()).to.deep.equal([]);
    dm.close();
  });

  async function openDriver(): Promise<Driver> {
    driver = await newDriver(root, { name: 'devicemapper', options: TEST_OPTIONS });
    return driver;
  }

  /** Creates l1 (with a file) and, for remove cases, l2 from it. */
  async function prepare(withChild: boolean): Promise<void> {
    const d = await openDriver();
    await d.create('l1');
    const dir = await d.get('l1');
    fs.writeFileSync(path.join(dir, 'kept'), 'committed');
    await d.put('l1');
    if (withChild) await d.create('l2', 'l1');
    await d.cleanup();
    driver = undefined;
  }

  async function checkInvariants(): Promise<Driver> {
    const d = await openDriver();
    const l1 = await d.get('l1');
    expect(fs.readFileSync(path.join(l1, 'kept'), 'utf8')).to.equal('committed');
    await d.put('l1');
    const transaction = JSON.parse(fs.readFileSync(path.join(root, 'devicemapper', 'metadata', 'transaction-metadata'), 'utf8'));
    const status = parseThinPoolStatus(dm.status(POOL)[0].params);
    expect(status.state).to.equal('ok');
    if (status.state === 'ok') expect(BigInt(transaction.open_transaction_id)).to.equal(status.transactionId);
    expect(orphanIds(dm, storedIds(root), 8)).to.deep.equal([]);
    return d;
  }

  for (const { step, operation, survives } of CASES) {
    it(`${step} recovers`, async function () {
      await prepare(operation === 'remove');
      const child = runChild(root, step, operation === 'create' ? ['create', 'l2', 'l1'] : ['remove', 'l2']);
      expect(child.signal, child.stderr as string).to.equal('SIGKILL');
      const d = await checkInvariants();
      expect(d.exists('l2')).to.equal(survives);
      if (survives) {
        const l2 = await d.get('l2');
        expect(fs.readFileSync(path.join(l2, 'kept'), 'utf8')).to.equal('committed');
        await d.put('l2');
      }
      // The driver still works: the layer can be made (again) and removed.
      if (!d.exists('l2')) await d.create('l2', 'l1');
      await d.remove('l2');
      expect(d.exists('l2')).to.equal(false);
    });
  }

  for (const step of ['base:after-open-transaction', 'base:after-create-thin', 'base:after-set-transaction-id', 'base:after-mkfs']) {
    it(`${step} recovers`, async function () {
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', `
const { newDriver } = await import(process.env.GD_MODULE);
await newDriver(process.env.GD_ROOT, { name: 'devicemapper', options: JSON.parse(process.env.GD_OPTIONS) });
`], { env: { ...process.env, GD_MODULE: MODULE, GD_ROOT: root, GD_OPTIONS: JSON.stringify(TEST_OPTIONS), DM_GRAPHDRIVER_CRASH_AT: step }, encoding: 'utf8' });
      expect(child.signal, child.stderr).to.equal('SIGKILL');
      const d = await openDriver();
      await d.create('l1');
      const dir = await d.get('l1');
      expect(fs.readdirSync(dir)).to.deep.equal([]);
      await d.put('l1');
      expect(orphanIds(dm, storedIds(root), 8)).to.deep.equal([]);
    });
  }
});
