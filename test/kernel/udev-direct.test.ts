// /dev/mapper nodes that the library makes itself, on a kernel with no udev
// running: the auto mode's choice, renames, mangled names, stale nodes,
// mknodes next to Debian's dmsetup, and cookies forced on with no udev to
// complete them.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

import {
  decodeDev,
  DirectNodes,
  DIRECT_UDEV_FLAGS,
  encodeDev,
  listCookies,
  openDeviceMapper,
  type DeviceMapper,
  type UdevWarning,
} from '../../src/index.js';
import { libc, S_IFBLK, type Libc } from '../../src/ioctl/libc.js';
import { sysv } from '../../src/ioctl/sysv.js';
import { leftoverDevices, testName } from './helpers.js';

const UDEV_RUNNING = fs.existsSync('/run/udev/control');
const SKIP_REASON = UDEV_RUNNING ? ' (skipped: udev runs in this guest and owns /dev/mapper; these run without DM_GUEST_UDEV)' : '';
const DMCTL = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/dmctl.js');
const DM_DEV_SUSPEND_NR = 6;
const EVENT_NR_OFFSET = 32;
const ZERO_TABLE = [{ start: 0n, length: 2048n, type: 'zero', params: '' }];

/** Returns the node's type and number, following links; undefined when missing. */
function nodeState(name: string): { block: boolean; rdev: bigint } | undefined {
  try {
    const stats = fs.statSync(path.join('/dev/mapper', name), { bigint: true });
    return { block: stats.isBlockDevice(), rdev: stats.rdev };
  } catch {
    return undefined;
  }
}

function devOf(info: { major: number; minor: number }): bigint {
  return encodeDev({ major: info.major, minor: info.minor });
}

function makeBlockNode(name: string, major: number, minor: number): void {
  const result = libc().mknod(path.join('/dev/mapper', name), S_IFBLK | 0o600, encodeDev({ major, minor }));
  expect(result, `mknod ${name}`).to.equal(0);
}

function cookieCount(): number {
  return listCookies(sysv()).length;
}

function run(command: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Lists the nodes of /dev/mapper except control, as name → "b MAJOR:MINOR". */
function mapperListing(): Record<string, string> {
  const listing: Record<string, string> = {};
  for (const name of fs.readdirSync('/dev/mapper').sort()) {
    if (name === 'control') continue;
    const state = nodeState(name);
    const dev = state ? decodeDev(state.rdev) : undefined;
    listing[name] = state ? `${state.block ? 'b' : '?'} ${dev?.major}:${dev?.minor}` : 'dangling';
  }
  return listing;
}

(SKIP_REASON ? describe.skip : describe)(`direct /dev/mapper nodes${SKIP_REASON}`, function () {
  let dm: DeviceMapper;

  beforeEach(function () {
    dm = openDeviceMapper();
  });

  afterEach(async function () {
    for (const name of leftoverDevices(dm)) await dm.remove(name, { ignoreMissing: true });
    dm.close();
  });

  it('auto mode makes the node itself', async function () {
    const sent: number[] = [];
    const real = libc();
    const recording: Libc = {
      ...real,
      ioctlBuffer(fd, request, buf) {
        if ((request & 0xff) === DM_DEV_SUSPEND_NR) sent.push(buf.readUInt32LE(EVENT_NR_OFFSET));
        return real.ioctlBuffer(fd, request, buf);
      },
    };
    const recorded = openDeviceMapper({ libc: recording });
    try {
      const name = testName('direct-auto');
      const info = await recorded.createDevice(name, { table: ZERO_TABLE });
      expect(info.nodeSync).to.equal('direct');
      expect(nodeState(name)).to.deep.equal({ block: true, rdev: devOf(info) });
      // Flags only, no cookie: PRIMARY_SOURCE with the dm and subsystem rules off.
      expect(sent).to.deep.equal([DIRECT_UDEV_FLAGS << 16]);
    } finally {
      recorded.close();
    }
  });

  it('rename moves node, remove deletes it', async function () {
    const name = testName('direct-old');
    const newName = testName('direct-new');
    const info = await dm.createDevice(name, { table: ZERO_TABLE });
    const renamed = await dm.rename(name, newName);
    expect(renamed.nodeSync).to.equal('direct');
    expect(nodeState(name)).to.equal(undefined);
    expect(nodeState(newName)).to.deep.equal({ block: true, rdev: devOf(info) });
    await dm.remove(newName);
    expect(nodeState(newName)).to.equal(undefined);
  });

  it('mangled name gets mangled node', async function () {
    const name = testName('a b');
    const mangled = testName('a\\x20b');
    const info = await dm.createDevice(name, { table: ZERO_TABLE });
    expect(nodeState(mangled)).to.deep.equal({ block: true, rdev: devOf(info) });
    expect(nodeState(testName('a'))).to.equal(undefined);
    await dm.remove(name);
    expect(nodeState(mangled)).to.equal(undefined);
  });

  it('stale node gets the right number', async function () {
    const name = testName('direct-stale');
    makeBlockNode(name, 7, 250);
    const info = await dm.createDevice(name, { table: ZERO_TABLE });
    expect(nodeState(name)).to.deep.equal({ block: true, rdev: devOf(info) });
  });

  it('mknodes matches dmsetup mknodes', async function () {
    const kept = testName('mk-kept');
    const missing = testName('mk-missing');
    const stale = testName('mk-stale');
    const stray = testName('mk-stray');
    // Start from a folder that matches the kernel: nodes of devices that earlier tests removed with a deferred remove may be left.
    expect(run('dmsetup', ['mknodes']).status).to.equal(0);
    for (const name of [kept, missing, stale]) await dm.createDevice(name, { table: ZERO_TABLE });
    const expected = mapperListing();
    const breakNodes = (): void => {
      fs.rmSync(path.join('/dev/mapper', missing));
      fs.rmSync(path.join('/dev/mapper', stale));
      makeBlockNode(stale, 7, 251);
      makeBlockNode(stray, 7, 252);
    };

    breakNodes();
    const dmsetup = run('dmsetup', ['mknodes']);
    expect(dmsetup.status, dmsetup.stderr).to.equal(0);
    expect(mapperListing()).to.deep.equal(expected);

    breakNodes();
    const dmctl = run(process.execPath, [DMCTL, 'mknodes']);
    expect(dmctl.status, dmctl.stderr).to.equal(0);
    expect(dmctl.stdout).to.equal(dmsetup.stdout);
    expect(mapperListing()).to.deep.equal(expected);
    expect(fs.existsSync('/dev/mapper/control')).to.equal(true);
  });

  it('mknodes NAME fixes one node', async function () {
    const name = testName('mk-one');
    const info = await dm.createDevice(name, { table: ZERO_TABLE });
    fs.rmSync(path.join('/dev/mapper', name));
    const made = run(process.execPath, [DMCTL, 'mknodes', name]);
    expect(made.status, made.stderr).to.equal(0);
    expect(nodeState(name)).to.deep.equal({ block: true, rdev: devOf(info) });
    await dm.remove(name);
    makeBlockNode(name, 7, 253);
    const removed = run(process.execPath, [DMCTL, 'mknodes', name]);
    expect(removed.status, removed.stderr).to.equal(0);
    expect(nodeState(name)).to.equal(undefined);
  });

  it('forced cookies time out to own node', async function () {
    const warnings: UdevWarning[] = [];
    const forced = openDeviceMapper({ udev: 'cookie', udevWaitTimeoutMs: 200, udevLogger: { warn: (w) => warnings.push(w) } });
    const before = cookieCount();
    try {
      const name = testName('forced');
      const info = await forced.createDevice(name, { table: ZERO_TABLE });
      expect(info.nodeSync).to.equal('timeout');
      expect(warnings.map((w) => w.code)).to.deep.equal(['DM_UDEV_WAIT_TIMEOUT']);
      expect(warnings[0].device).to.equal(name);
      expect(nodeState(name)).to.deep.equal({ block: true, rdev: devOf(info) });
      expect(cookieCount()).to.equal(before);
      const data = Buffer.alloc(4096, 1);
      const fd = fs.openSync(path.join('/dev/mapper', name), 'r');
      try {
        expect(fs.readSync(fd, data, 0, data.length, 0)).to.equal(data.length);
      } finally {
        fs.closeSync(fd);
      }
      expect(data.every((byte) => byte === 0)).to.equal(true);
      await forced.remove(name);
      expect(nodeState(name)).to.equal(undefined);
      expect(cookieCount()).to.equal(before);
    } finally {
      forced.close();
    }
  });

  it('DirectNodes keeps right links', function () {
    const dir = fs.mkdtempSync('/tmp/dm-nodes-');
    try {
      const nodes = new DirectNodes({ dir });
      fs.symlinkSync('/dev/mapper/control', path.join(dir, 'not-block'));
      expect(nodes.ensureNode('not-block', { major: 7, minor: 0 })).to.equal('replaced');
      expect(fs.lstatSync(path.join(dir, 'not-block')).isBlockDevice()).to.equal(true);
      fs.symlinkSync(path.join(dir, 'not-block'), path.join(dir, 'link'));
      expect(nodes.ensureNode('link', { major: 7, minor: 0 })).to.equal('kept');
      expect(fs.lstatSync(path.join(dir, 'link')).isSymbolicLink()).to.equal(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
