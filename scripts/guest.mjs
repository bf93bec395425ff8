#!/usr/bin/env node
// Runs a command inside a QEMU guest that has device-mapper, because the
// kernel of the build machine may not. The guest boots the Debian cloud
// kernel with an initramfs made of busybox, this host's node binary, mke2fs,
// Debian's dmsetup and udev, the kernel modules and a copy of the project
// at /project. systemd-udevd runs only when DM_GUEST_UDEV requests it.
//
// Usage: node scripts/guest.mjs [options] -- COMMAND [ARGS...]
//        node scripts/guest.mjs --build-only
// Run with --help for the options. Needs root on the first run on a new
// machine, to install qemu-system-x86, busybox-static and e2fsprogs.

import { copyFileSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { FileSink } from './guest/cpio.mjs';
import { GuestError, ensureHostTools, findExecutable, log } from './guest/host.mjs';
import { ensureBaseImage, formatMiB } from './guest/image.mjs';
import { prepareKernel } from './guest/kernel.mjs';
import { EXIT_RUNNER_FAILED, QEMU_BINARY, runQemu } from './guest/qemu.mjs';
import { buildRunTree, passedEnvironment } from './guest/run-archive.mjs';
import { guestUdevMode, prepareUdev } from './guest/udev.mjs';

const REPOSITORY_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const DEFAULT_CACHE_DIR = join(REPOSITORY_ROOT, '.cache', 'guest');
const DEFAULT_TIMEOUT_SECONDS = 900;
const DEFAULT_MEMORY_MIB = 1024;
// The initrd and its unpacked copy are both in guest memory during boot.
// With the 111 MiB image of Debian 12's node 20, 384 MiB failed to unpack.
const MIN_MEMORY_MIB = 512;
const EXIT_USAGE = 2;
const RUN_INITRD_PATTERN = /^run-(\d+)\.cpio$/;

// Host tools the builder needs, with the Debian package that provides each.
const HOST_TOOLS = {
  [QEMU_BINARY]: 'qemu-system-x86',
  busybox: 'busybox-static',
  mke2fs: 'e2fsprogs',
  // Debian's dmsetup is a test-only peer: differential and interop tests run
  // it next to the library. The library itself never calls it.
  dmsetup: 'dmsetup',
};
// Tools that every Debian system has, used to download and unpack the kernel.
const DEBIAN_TOOLS = ['apt-get', 'apt-cache', 'dpkg-deb', 'dpkg-query', 'ldd'];

const USAGE = `Usage: node scripts/guest.mjs [OPTIONS] -- COMMAND [ARGS...]
       node scripts/guest.mjs --build-only

Runs COMMAND in a QEMU guest with device-mapper, in /project, a copy of the
project's package.json, dist/, node_modules/, fixtures/ and scripts/. The
command's stdout and stderr both arrive on stdout. Exits with the command's
exit status, 124 on timeout, 125 if the guest failed, 2 on invalid options,
or 128 + N after signal N.

Options:
  --timeout SECONDS  stop the guest after this many seconds (default ${DEFAULT_TIMEOUT_SECONDS})
  --mem MIB          guest memory in MiB (default ${DEFAULT_MEMORY_MIB}, at least ${MIN_MEMORY_MIB})
  --project DIR      project folder to copy (default ${REPOSITORY_ROOT})
  --build-only       only download the kernel and build the cached base image
  --help             show this help

Environment:
  DM_GUEST_CACHE     cache folder (default ${DEFAULT_CACHE_DIR})
  DM_GUEST_UDEV      1 starts systemd-udevd with lvm2's dm rules before the
                     command; no-notify does so without 95-dm-notify.rules,
                     so udev never completes a cookie; unset or 0: no udev
  NODE_DEBUG, CI, NO_COLOR, FORCE_COLOR, DM_* and MOCHA_* are passed on to
  the command. TERM is the host's when stdout is a terminal, else "dumb".`;

class UsageError extends Error {}

function parsePositiveNumber(option, text, minimum = 0) {
  const value = Number(text);
  if (text === '' || !Number.isFinite(value) || value <= 0 || value < minimum) {
    const range = minimum > 0 ? `a number of at least ${minimum}` : 'a positive number';
    throw new UsageError(`invalid value ${JSON.stringify(text)} for ${option}: expected ${range}`);
  }
  return value;
}

function parseArguments(argv) {
  const options = {
    timeoutSeconds: DEFAULT_TIMEOUT_SECONDS,
    memoryMiB: DEFAULT_MEMORY_MIB,
    projectDir: REPOSITORY_ROOT,
    buildOnly: false,
    help: false,
    command: [],
  };
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index];
    const [name, inlineValue] = argument.startsWith('--') ? argument.split(/=(.*)/s) : [argument];
    const takeValue = () => {
      const value = inlineValue ?? argv[++index];
      if (value === undefined) {
        throw new UsageError(`missing value for ${name}`);
      }
      return value;
    };
    if (argument === '--') {
      options.command = argv.slice(index + 1);
      break;
    } else if (name === '--timeout') {
      options.timeoutSeconds = parsePositiveNumber('--timeout', takeValue());
    } else if (name === '--mem') {
      options.memoryMiB = Math.round(parsePositiveNumber('--mem', takeValue(), MIN_MEMORY_MIB));
    } else if (name === '--project') {
      options.projectDir = resolve(takeValue());
    } else if (argument === '--build-only') {
      options.buildOnly = true;
    } else if (argument === '--help' || argument === '-h') {
      options.help = true;
    } else if (argument.startsWith('-')) {
      throw new UsageError(`unknown option ${argument}`);
    } else {
      // The command may also follow the options without "--".
      options.command = argv.slice(index);
      break;
    }
  }
  if (!options.help && !options.buildOnly && options.command.length === 0) {
    throw new UsageError('missing COMMAND: put it after "--"');
  }
  if (!options.help && !options.buildOnly && !existsSync(join(options.projectDir, 'package.json'))) {
    throw new UsageError(`no package.json in the project folder ${options.projectDir}: pass the project with --project DIR`);
  }
  return options;
}

function checkDebianTools() {
  const missing = DEBIAN_TOOLS.filter((tool) => findExecutable(tool) === null);
  if (missing.length > 0) {
    throw new GuestError(`missing ${missing.join(', ')}: the guest builder needs a Debian or Ubuntu host with apt and dpkg`);
  }
}

// Removes per-run initrd files left behind by runners that were killed before they could delete them.
function removeStaleRunImages(cacheDir) {
  for (const file of readdirSync(cacheDir)) {
    const pid = Number(RUN_INITRD_PATTERN.exec(file)?.[1]);
    if (pid && !isProcessAlive(pid)) {
      rmSync(join(cacheDir, file), { force: true });
    }
  }
}

function isProcessAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

// Writes CACHE/run-PID.cpio: the base image followed by the per-run archive.
// The kernel unpacks concatenated cpio archives one after the other.
function writeRunInitrd(cacheDir, baseImage, options) {
  const initrd = join(cacheDir, `run-${process.pid}.cpio`);
  copyFileSync(baseImage, initrd);
  const tree = buildRunTree(options.projectDir, options.command, passedEnvironment());
  const fd = openSync(initrd, 'a');
  try {
    tree.writeArchive(new FileSink(fd));
  } finally {
    closeSync(fd);
  }
  return initrd;
}

function createCacheDir() {
  const cacheDir = resolve(process.env.DM_GUEST_CACHE || DEFAULT_CACHE_DIR);
  try {
    mkdirSync(cacheDir, { recursive: true });
  } catch (error) {
    throw new GuestError(`cannot create the cache folder ${cacheDir} (${error.code}): point DM_GUEST_CACHE at a writable folder`);
  }
  return cacheDir;
}

async function runInGuest(options) {
  const cacheDir = createCacheDir();
  const udevMode = guestUdevMode();
  checkDebianTools();
  ensureHostTools(HOST_TOOLS);
  const kernel = prepareKernel(cacheDir);
  const udev = prepareUdev(cacheDir);
  const baseImage = ensureBaseImage(cacheDir, kernel, udev);
  if (options.buildOnly) {
    log(`base image ready: ${baseImage} (${formatMiB(statSync(baseImage).size)}), kernel ${kernel.vmlinuz}`);
    return 0;
  }
  removeStaleRunImages(cacheDir);
  const initrd = writeRunInitrd(cacheDir, baseImage, options);
  try {
    log(`Linux ${kernel.release} (TCG), image ${baseImage}${udevMode === null ? '' : `, udev ${udev.version} (DM_GUEST_UDEV=${udevMode})`}`);
    return await runQemu({
      vmlinuz: kernel.vmlinuz,
      initrd,
      consoleLog: join(cacheDir, 'console.log'),
      memoryMiB: options.memoryMiB,
      timeoutSeconds: options.timeoutSeconds,
    });
  } finally {
    rmSync(initrd, { force: true });
  }
}

async function main() {
  let options;
  try {
    options = parseArguments(process.argv.slice(2));
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`guest: ${error.message}\n\n${USAGE}\n`);
      return EXIT_USAGE;
    }
    throw error;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    return await runInGuest(options);
  } catch (error) {
    if (error instanceof GuestError) {
      log(`error: ${error.message}`);
    } else {
      process.stderr.write(`guest: unexpected error: ${error.stack ?? error}\n`);
    }
    return EXIT_RUNNER_FAILED;
  }
}

// Setting exitCode instead of calling process.exit() lets stdout drain.
process.exitCode = await main();
