// Udev cookies against Debian's systemd-udevd running lvm2's dm rules in the
// guest (DM_GUEST_UDEV=1): udev completes the library's cookies through the
// real `dmsetup udevcomplete`, dmctl completes cookies that Debian's dmsetup
// waits on, and with 95-dm-notify.rules taken away the library's wait ends
// in its timeout with the device usable.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

import {
  COOKIE_UDEV_FLAGS,
  createNodeSync,
  encodeDev,
  listCookies,
  openDeviceMapper,
  UdevCookieSync,
  type DeviceMapper,
  type UdevWarning,
} from '../../src/index.js';
import { sysv } from '../../src/ioctl/sysv.js';
import { leftoverDevices, testName } from './helpers.js';

const UDEV_RUNNING = fs.existsSync('/run/udev/control');
const SKIP_REASON = UDEV_RUNNING ? '' : ' (skipped: no udev runs here; npm run test:kernel runs these with DM_GUEST_UDEV=1)';
const DMCTL = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/dmctl.js');
const RULES_DIR = '/lib/udev/rules.d';
const NOTIFY_RULE = path.join(RULES_DIR, '95-dm-notify.rules');
// udev reads only *.rules, so this name takes the rule out of use.
const PARKED_NOTIFY_RULE = `${NOTIFY_RULE}.parked`;
const ZERO_TABLE = [{ start: 0n, length: 2048n, type: 'zero', params: '' }];
const MAGIC_TEXT = '3405 (0xd4d)';

function cookieCount(): number {
  return listCookies(sysv()).length;
}

function capture(): { warnings: UdevWarning[]; logger: { warn: (w: UdevWarning) => void } } {
  const warnings: UdevWarning[] = [];
  return { warnings, logger: { warn: (warning) => warnings.push(warning) } };
}

function run(command: string, args: string[], input = ''): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { encoding: 'utf8', input });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function dmctl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return run(process.execPath, [DMCTL, ...args]);
}

function settle(): void {
  execFileSync('udevadm', ['settle', '--timeout=60']);
}

function rdevOf(file: string): bigint | undefined {
  try {
    return fs.statSync(file, { bigint: true }).rdev;
  } catch {
    return undefined;
  }
}

function udevProperties(devicePath: string): Record<string, string> {
  const output = execFileSync('udevadm', ['info', '--query=property', `--name=${devicePath}`], { encoding: 'utf8' });
  return Object.fromEntries(output.trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]));
}

function readZeros(file: string): boolean {
  const data = Buffer.alloc(4096, 1);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, data, 0, data.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  return data.every((byte) => byte === 0);
}

/** Removes every cookie that Debian's dmsetup left, so counts start clean. */
function dropCookies(): void {
  run('dmsetup', ['udevcomplete_all', '-y']);
}

(SKIP_REASON ? describe.skip : describe)(`udev cookies with systemd-udevd${SKIP_REASON}`, function () {
  let dm: DeviceMapper;
  let cookiesBefore: number;
  let warnings: UdevWarning[];

  beforeEach(function () {
    const captured = capture();
    warnings = captured.warnings;
    dm = openDeviceMapper({ udevLogger: captured.logger });
    cookiesBefore = cookieCount();
  });

  afterEach(async function () {
    for (const name of leftoverDevices(dm)) await dm.remove(name, { ignoreMissing: true, retry: true });
    dm.close();
    settle();
  });

  it('auto mode uses cookies', function () {
    expect(createNodeSync()).to.be.instanceOf(UdevCookieSync);
  });

  it('resume resolves after udev links', async function () {
    const name = testName('udev-links');
    const info = await dm.createDevice(name, { table: ZERO_TABLE });
    expect(info.nodeSync).to.equal('udev');
    expect(warnings).to.deep.equal([]);
    const link = `/dev/mapper/${name}`;
    expect(fs.lstatSync(link).isSymbolicLink()).to.equal(true);
    expect(fs.readlinkSync(link)).to.equal(`../dm-${info.minor}`);
    expect(rdevOf(link)).to.equal(encodeDev(info));
    expect(rdevOf(`/dev/disk/by-id/dm-name-${name}`)).to.equal(encodeDev(info));
    expect(cookieCount()).to.equal(cookiesBefore);
  });

  it('udev reads the library flags', async function () {
    // The kernel's uevent carries event_nr as DM_COOKIE; udev's database keeps the flags it decoded.
    const monitor = spawn('udevadm', ['monitor', '--kernel', '--property', '--subsystem-match=block'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let events = '';
    monitor.stdout.on('data', (chunk: Buffer) => (events += chunk.toString()));
    try {
      for (let tries = 0; tries < 100 && !events.includes('monitor will print'); tries++) await sleep(50);
      const name = testName('udev-flags');
      const info = await dm.createDevice(name, { table: ZERO_TABLE });
      for (let tries = 0; tries < 100 && !/DM_COOKIE=\d+/.test(events); tries++) await sleep(50);
      const cookie = Number(/DM_COOKIE=(\d+)/.exec(events)?.[1]);
      expect(cookie >>> 16).to.equal(COOKIE_UDEV_FLAGS);
      expect(cookie & 0xffff).to.not.equal(0);
      const properties = udevProperties(`/dev/dm-${info.minor}`);
      expect(properties.DM_NAME).to.equal(name);
      expect(properties.DM_UDEV_PRIMARY_SOURCE_FLAG).to.equal('1');
      expect(properties.DM_UDEV_DISABLE_LIBRARY_FALLBACK_FLAG).to.equal('1');
    } finally {
      monitor.kill();
    }
  });

  it('rename moves udev links', async function () {
    const name = testName('udev-old');
    const newName = testName('udev-new');
    const info = await dm.createDevice(name, { table: ZERO_TABLE });
    const renamed = await dm.rename(name, newName);
    expect(renamed.nodeSync).to.equal('udev');
    expect(fs.existsSync(`/dev/mapper/${name}`)).to.equal(false);
    expect(rdevOf(`/dev/mapper/${newName}`)).to.equal(encodeDev(info));
    expect(rdevOf(`/dev/disk/by-id/dm-name-${newName}`)).to.equal(encodeDev(info));
    expect(fs.existsSync(`/dev/disk/by-id/dm-name-${name}`)).to.equal(false);
    expect(warnings).to.deep.equal([]);
  });

  it('remove resolves after udev drops links', async function () {
    const name = testName('udev-remove');
    await dm.createDevice(name, { table: ZERO_TABLE });
    await dm.remove(name, { retry: true });
    expect(fs.existsSync(`/dev/mapper/${name}`)).to.equal(false);
    expect(fs.existsSync(`/dev/disk/by-id/dm-name-${name}`)).to.equal(false);
    expect(cookieCount()).to.equal(cookiesBefore);
    expect(warnings).to.deep.equal([]);
  });

  it('resume without uevent completes itself', async function () {
    const name = testName('udev-twice');
    const info = await dm.createDevice(name, { table: ZERO_TABLE });
    const again = await dm.resume(name);
    expect(again.nodeSync).to.equal('no-uevent');
    expect(warnings.map((w) => w.code)).to.deep.equal(['DM_UDEV_NO_UEVENT']);
    expect(rdevOf(`/dev/mapper/${name}`)).to.equal(encodeDev(info));
    expect(cookieCount()).to.equal(cookiesBefore);
  });

  it('mangled name gets one udev link', async function () {
    const name = testName('u x');
    const info = await dm.createDevice(name, { table: ZERO_TABLE });
    expect(info.nodeSync).to.equal('udev');
    expect(rdevOf(`/dev/mapper/${testName('u\\x20x')}`)).to.equal(encodeDev(info));
    expect(fs.existsSync(`/dev/mapper/${testName('u')}`)).to.equal(false);
  });

  it('pool teardown waits for each cookie', async function () {
    const { ThinPool } = await import('../../src/index.js');
    const { workFile } = await import('./helpers.js');
    const pool = await ThinPool.create(dm, {
      name: testName('udev-pool'),
      dataFile: workFile('udev-pool-data.img'),
      metadataFile: workFile('udev-pool-meta.img'),
      dataSize: 64 * 1024 * 1024,
      metadataSize: 4 * 1024 * 1024,
    });
    pool.createThin(1);
    await pool.activateThin(testName('udev-thin'), 1, 8192n);
    expect(fs.existsSync(`/dev/mapper/${testName('udev-thin')}`)).to.equal(true);
    await pool.destroy();
    expect(fs.existsSync(`/dev/mapper/${testName('udev-thin')}`)).to.equal(false);
    expect(fs.existsSync(`/dev/mapper/${testName('udev-pool')}`)).to.equal(false);
    expect(cookieCount()).to.equal(cookiesBefore);
    expect(warnings).to.deep.equal([]);
  });

  describe('dmctl next to dmsetup', function () {
    beforeEach(dropCookies);
    afterEach(dropCookies);

    function createCookies(count: number): string[] {
      const cookies: string[] = [];
      for (let i = 0; i < count; i++) {
        const made = run('dmsetup', ['udevcreatecookie']);
        expect(made.status, made.stderr).to.equal(0);
        cookies.push(made.stdout.trim());
      }
      return cookies;
    }

    it('udevcookies prints what dmsetup prints', function () {
      createCookies(2);
      const ours = dmctl('udevcookies');
      const theirs = run('dmsetup', ['udevcookies']);
      expect(ours.status, ours.stderr).to.equal(0);
      expect(ours.stdout).to.equal(theirs.stdout);
      expect(ours.stdout.trim().split('\n')).to.have.length(3);
    });

    it('udevcomplete decrements a dmsetup cookie', function () {
      const [cookie] = createCookies(1);
      const done = dmctl('udevcomplete', cookie);
      expect(done.status, done.stderr).to.equal(0);
      expect(done.stdout).to.equal('');
      const [status] = listCookies(sysv());
      expect(status.key).to.equal(Number(cookie));
      expect(status.value).to.equal(0);
      const again = dmctl('udevcomplete', cookie);
      expect(again.status).to.equal(1);
      expect(again.stderr).to.match(/EAGAIN/);
    });

    it('udevcomplete_all prints what dmsetup prints', function () {
      createCookies(2);
      const ours = dmctl('udevcomplete_all', '-y');
      createCookies(2);
      const theirs = run('dmsetup', ['udevcomplete_all', '-y']);
      expect(ours.status, ours.stderr).to.equal(0);
      expect(ours.stdout).to.equal(theirs.stdout);
      expect(ours.stdout).to.equal(`2 semaphores with keys prefixed by ${MAGIC_TEXT} destroyed. 0 skipped.\n`);
      expect(cookieCount()).to.equal(0);
    });

    it('udevcomplete_all skips young cookies', function () {
      createCookies(1);
      const ours = dmctl('udevcomplete_all', '5', '-y');
      const theirs = run('dmsetup', ['udevcomplete_all', '5', '-y']);
      expect(ours.stdout).to.equal(`0 semaphores with keys prefixed by ${MAGIC_TEXT} destroyed. 1 skipped.\n`);
      expect(ours.stdout).to.equal(theirs.stdout);
      expect(cookieCount()).to.equal(1);
    });

    it('udevcomplete_all asks first', function () {
      createCookies(1);
      const ours = dmctl('udevcomplete_all');
      const theirs = run('dmsetup', ['udevcomplete_all']);
      expect(ours.stdout).to.equal(theirs.stdout);
      expect(ours.stderr).to.contain(`WARNING: This operation will destroy all semaphores with keys that have a prefix ${MAGIC_TEXT}.`);
      expect(cookieCount()).to.equal(1);
    });
  });

  describe('without 95-dm-notify.rules', function () {
    before(function () {
      fs.renameSync(NOTIFY_RULE, PARKED_NOTIFY_RULE);
      execFileSync('udevadm', ['control', '--reload']);
    });

    // No cookie completes now, so the shared handle must not wait 30 s in afterEach's removes.
    beforeEach(function () {
      dm.close();
      dm = openDeviceMapper({ udevWaitTimeoutMs: 1000, udevLogger: capture().logger });
    });

    after(function () {
      fs.renameSync(PARKED_NOTIFY_RULE, NOTIFY_RULE);
      execFileSync('udevadm', ['control', '--reload']);
      dropCookies();
    });

    it('wait times out, device stays usable', async function () {
      const captured = capture();
      const impatient = openDeviceMapper({ udevWaitTimeoutMs: 1500, udevLogger: captured.logger });
      try {
        const name = testName('udev-timeout');
        const started = performance.now();
        const info = await impatient.createDevice(name, { table: ZERO_TABLE });
        expect(performance.now() - started).to.be.below(20000);
        expect(info.nodeSync).to.equal('timeout');
        expect(captured.warnings.map((w) => w.code)).to.deep.equal(['DM_UDEV_WAIT_TIMEOUT']);
        expect(captured.warnings[0].device).to.equal(name);
        expect(captured.warnings[0].cookie! >>> 16).to.equal(0x0d4d);
        expect(cookieCount()).to.equal(cookiesBefore);
        const state = impatient.info(name);
        if (!state.exists) expect.fail('device does not exist');
        expect(state.suspended).to.equal(false);
        expect(state.liveTable).to.equal(true);
        expect(rdevOf(`/dev/mapper/${name}`)).to.equal(encodeDev(info));
        expect(readZeros(`/dev/mapper/${name}`)).to.equal(true);
        await impatient.remove(name, { retry: true });
        expect(fs.existsSync(`/dev/mapper/${name}`)).to.equal(false);
        expect(cookieCount()).to.equal(cookiesBefore);
      } finally {
        impatient.close();
      }
    });

    it('abort ends the wait', async function () {
      const controller = new AbortController();
      const abortable = openDeviceMapper({ udevWaitTimeoutMs: 60000, udevWaitSignal: controller.signal });
      try {
        const name = testName('udev-abort');
        abortable.create(name);
        abortable.load(name, ZERO_TABLE);
        setTimeout(() => controller.abort(), 300);
        const started = performance.now();
        const error = await abortable.resume(name).then(
          () => undefined,
          (rejection: unknown) => rejection as { code?: string },
        );
        expect(error?.code).to.equal('ABORT_ERR');
        expect(performance.now() - started).to.be.below(10000);
        expect(cookieCount()).to.equal(cookiesBefore);
        const state = abortable.info(name);
        if (!state.exists) expect.fail('device does not exist');
        expect(state.liveTable).to.equal(true);
        expect(fs.existsSync(`/dev/mapper/${name}`)).to.equal(true);
      } finally {
        abortable.close();
      }
    });

    it('dmctl udevcomplete releases dmsetup', async function () {
      const name = testName('udev-dmsetup');
      dm.create(name);
      dm.load(name, ZERO_TABLE);
      const waiting = spawn('dmsetup', ['resume', name], { stdio: 'ignore' });
      const exited = new Promise<number | null>((resolve) => waiting.on('exit', (code) => resolve(code)));
      try {
        // dmsetup has dropped its own count once its cookie reads 1.
        let cookie: number | undefined;
        for (let tries = 0; tries < 200 && cookie === undefined; tries++) {
          cookie = listCookies(sysv()).find((status) => status.value === 1)?.key;
          if (cookie === undefined) await sleep(50);
        }
        expect(cookie, 'dmsetup cookie').to.not.equal(undefined);
        const ours = dmctl('udevcookies');
        expect(ours.stdout).to.equal(run('dmsetup', ['udevcookies']).stdout);
        const done = dmctl('udevcomplete', `0x${cookie!.toString(16)}`);
        expect(done.status, done.stderr).to.equal(0);
        const code = await Promise.race([exited, sleep(20000).then(() => 'still waiting')]);
        expect(code).to.equal(0);
        expect(cookieCount()).to.equal(cookiesBefore);
        const state = dm.info(name);
        if (!state.exists) expect.fail('device does not exist');
        expect(state.liveTable).to.equal(true);
      } finally {
        waiting.kill();
      }
    });
  });
});
