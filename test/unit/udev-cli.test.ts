// dmctl's udev commands: output formats written out from dmsetup.c, run on
// real semaphores (only the ones each test creates are visible) and on the
// fake kernel for mknodes.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

import { formatCookieLine, formatCTime, mknodes, udevcomplete, udevcompleteAll, udevcookies, type UdevCommandIo } from '../../src/cli/udev.js';
import { DmErrorCode } from '../../src/ioctl/errors.js';
import { cookieEventNr, createCookie, listCookies, UdevErrorCode } from '../../src/udev/cookie.js';
import { catchDmError, FakeKernel, makeTempDir, rejectionOf } from './fake-kernel.js';
import { TrackingSysv } from './udev-fakes.js';

const DMCTL = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/dmctl.js');
const HEADER = 'Cookie       Semid      Value      Last semop time           Last change time\n';
const MAGIC = '3405 (0xd4d)';

/** Returns a writer that keeps what was written. */
function sink(): { write: (text: string) => void; text: () => string } {
  let written = '';
  return { write: (text) => (written += text), text: () => written };
}

describe('dmctl udev commands', function () {
  let sem: TrackingSysv;
  let stdout: ReturnType<typeof sink>;
  let stderr: ReturnType<typeof sink>;
  let savedTz: string | undefined;

  function io(input = ''): UdevCommandIo {
    return { sysv: sem, out: stdout, err: stderr, stdin: Readable.from(input === '' ? [] : [input]) };
  }

  before(function () {
    savedTz = process.env.TZ;
    process.env.TZ = 'UTC';
  });

  after(function () {
    if (savedTz === undefined) delete process.env.TZ;
    else process.env.TZ = savedTz;
  });

  beforeEach(function () {
    sem = new TrackingSysv();
    stdout = sink();
    stderr = sink();
  });

  afterEach(function () {
    sem.cleanUp();
  });

  it('ctime format matches ctime(3)', function () {
    expect(formatCTime(0)).to.equal('Thu Jan  1 00:00:00 1970');
    expect(formatCTime(1000000000)).to.equal('Sun Sep  9 01:46:40 2001');
    expect(formatCTime(1431792918)).to.equal('Sat May 16 16:15:18 2015');
  });

  it('udevcookies line matches dmsetup', function () {
    // printf("0x%-10x %-10d %-10d %s  %s\n"): the key is padded to 10 hex digits.
    const line = formatCookieLine({ key: 0x0d4d1234, semid: 7, value: 1, otime: 0, ctime: 1000000000 });
    expect(line).to.equal('0xd4d1234    7          1          Thu Jan  1 00:00:00 1970  Sun Sep  9 01:46:40 2001\n');
  });

  it('udevcookies lists each cookie', async function () {
    const first = createCookie(sem);
    const second = createCookie(sem);
    second.increment();
    udevcookies(io());
    const lines = stdout.text().split('\n');
    expect(`${lines[0]}\n`).to.equal(HEADER);
    expect(lines).to.have.length(4);
    expect(lines[1]).to.match(new RegExp(`^0x${first.key.toString(16)} +${first.semid} +1 +\\w{3} \\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d \\d{4}  \\w{3}`));
    expect(lines[2]).to.match(new RegExp(`^0x${second.key.toString(16)} +${second.semid} +2 `));
  });

  it('udevcomplete decrements quietly', async function () {
    const cookie = createCookie(sem);
    cookie.increment();
    udevcomplete(String(cookieEventNr(cookie.base, 0x60)), io());
    expect(cookie.value()).to.equal(1);
    udevcomplete(`0x${cookie.key.toString(16)}`, io());
    expect(cookie.value()).to.equal(0);
    expect(stdout.text()).to.equal('');
  });

  it('udevcomplete accepts flags-only value', async function () {
    udevcomplete(String(0x00600000), io());
    expect(sem.semgetCalls).to.equal(0);
  });

  it('udevcomplete rejects bad cookie', function () {
    expect(catchDmError(() => udevcomplete('junk', io())).code).to.equal(UdevErrorCode.INVALID_COOKIE);
  });

  it('udevcomplete_all asks and stops at no', async function () {
    createCookie(sem);
    await udevcompleteAll(undefined, false, io('n\n'));
    expect(stderr.text()).to.equal(`WARNING: This operation will destroy all semaphores with keys that have a prefix ${MAGIC}.\n`);
    expect(stdout.text()).to.equal(`Do you really want to continue? [y/n]: Semaphores with keys prefixed by ${MAGIC} NOT destroyed.\n`);
    expect(sem.live()).to.have.length(1);
  });

  it('udevcomplete_all reads end of input as no', async function () {
    createCookie(sem);
    await udevcompleteAll('10', false, io());
    expect(stderr.text()).to.contain('all semaphores older than 10 minutes with keys');
    expect(stdout.text()).to.equal(`Do you really want to continue? [y/n]: \nSemaphores with keys prefixed by ${MAGIC} NOT destroyed.\n`);
    expect(sem.live()).to.have.length(1);
  });

  it('udevcomplete_all asks again until y or n', async function () {
    createCookie(sem);
    await udevcompleteAll(undefined, false, io('what\nyes\n'));
    const prompt = 'Do you really want to continue? [y/n]: ';
    expect(stdout.text()).to.equal(`${prompt}${prompt}1 semaphores with keys prefixed by ${MAGIC} destroyed. 0 skipped.\n`);
    expect(sem.live()).to.deep.equal([]);
  });

  it('udevcomplete_all -y skips young cookies', async function () {
    createCookie(sem);
    const [status] = listCookies(sem);
    await udevcompleteAll('5', true, { ...io(), now: () => status.ctime + 60 });
    expect(stderr.text()).to.equal('');
    expect(stdout.text()).to.equal(`0 semaphores with keys prefixed by ${MAGIC} destroyed. 1 skipped.\n`);
    await udevcompleteAll('5', true, { ...io(), now: () => status.ctime + 301 });
    expect(stdout.text()).to.contain(`1 semaphores with keys prefixed by ${MAGIC} destroyed. 0 skipped.\n`);
  });

  it('udevcomplete_all rejects bad age', async function () {
    const error = await rejectionOf(udevcompleteAll('soon', true, io()));
    expect(error.code).to.equal(DmErrorCode.INVALID_ARGUMENT);
    expect(error.message).to.contain('Failed to read age_in_minutes');
  });
});

describe('dmctl mknodes', function () {
  let dir: string;
  let kernel: FakeKernel;

  function io(): UdevCommandIo {
    const ignore = { write: () => undefined };
    return { out: ignore, err: ignore, nodeDir: dir, deviceMapperOptions: { controlPath: '/dev/null', libc: kernel } };
  }

  beforeEach(function () {
    dir = makeTempDir('mknodes');
    kernel = new FakeKernel();
  });

  afterEach(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reconciles folder with kernel', async function () {
    kernel.addDevice('a');
    kernel.addDevice('b\\x20c');
    fs.writeFileSync(path.join(dir, 'stray'), '');
    fs.writeFileSync(path.join(dir, 'control'), '');
    fs.mkdirSync(path.join(dir, 'sub'));
    mknodes([], io());
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['a', 'b\\x20c', 'control', 'sub']);
    expect(kernel.mknodCalls.map((call) => [path.basename(call.path), call.dev])).to.deep.equal([
      ['a', 0xfd00n],
      ['b\\x20c', 0xfd01n],
    ]);
  });

  it('NAME makes or removes one node', async function () {
    kernel.addDevice('b\\x20c');
    mknodes(['b c'], io());
    expect(fs.existsSync(path.join(dir, 'b\\x20c'))).to.equal(true);
    fs.writeFileSync(path.join(dir, 'gone'), '');
    mknodes(['gone'], io());
    expect(fs.existsSync(path.join(dir, 'gone'))).to.equal(false);
  });
});

describe('dmctl udev dispatch', function () {
  it('help lists udev commands', function () {
    const result = spawnSync(process.execPath, [DMCTL, 'help'], { encoding: 'utf8' });
    for (const line of ['\tudevcomplete <cookie>', '\tudevcomplete_all [<age_in_minutes>]', '\tudevcookies', '\tmknodes [<device>...]']) {
      expect(result.stdout).to.contain(line);
    }
  });

  it('bad cookie exits 1', function () {
    const result = spawnSync(process.execPath, [DMCTL, 'udevcomplete', 'junk'], { encoding: 'utf8' });
    expect(result.status).to.equal(1);
    expect(result.stderr).to.contain('Invalid cookie value "junk"');
    expect(result.stderr).to.contain('Command failed.');
  });

  it('-y answers the question', function () {
    const result = spawnSync(process.execPath, [DMCTL, 'udevcomplete_all', '1000000', '-y'], { encoding: 'utf8' });
    expect(result.status, result.stderr).to.equal(0);
    expect(result.stderr).to.equal('');
    expect(result.stdout).to.match(new RegExp(`^0 semaphores with keys prefixed by ${MAGIC.replace(/[()]/g, '\\$&')} destroyed\\. \\d+ skipped\\.\n$`));
  });

  it('udevcookies prints header', function () {
    const result = spawnSync(process.execPath, [DMCTL, 'udevcookies'], { encoding: 'utf8' });
    expect(result.status, result.stderr).to.equal(0);
    expect(result.stdout.startsWith(HEADER)).to.equal(true);
  });
});
