// Builds the cached base initramfs: busybox, this host's node and mke2fs
// with their libraries, Debian's dmsetup and udev, the kernel modules, and
// /init.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

import { FileSink } from './cpio.mjs';
import { GuestError, findExecutable, log, run, sharedLibraries } from './host.mjs';
import { ImageTree } from './image-tree.mjs';
import { selectModules } from './kernel.mjs';
import { DM_NOTIFY_RULE, ruleGroups } from './udev.mjs';

// Bump when the image recipe changes in a way that baseStamp() does not
// cover (for example which host files go in), so cached images are rebuilt.
export const IMAGE_RECIPE_VERSION = 3;

const INIT_TEMPLATE = join(dirname(fileURLToPath(import.meta.url)), 'init.sh');
export const EXIT_MARKER_PREFIX = '@@DM-GUEST-EXIT';
export const GUEST_PATH = '/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin';
export const GUEST_PROJECT_DIR = '/project';
export const GUEST_COMMAND_SCRIPT = '/guest/command.sh';
/** Written by the per-run archive when the run requests udev; contains the DM_GUEST_UDEV mode. */
export const GUEST_UDEV_MODE_FILE = '/guest/udev';
const GUEST_UDEVADM = '/bin/udevadm';
// Debian's udev package links systemd-udevd to udevadm, which acts on its name.
const GUEST_UDEVD = '/lib/systemd/systemd-udevd';
const GUEST_UDEV_CONF = '/etc/udev/udev.conf';
const GUEST_RULES_DIR = '/lib/udev/rules.d';
const GUEST_NODE = '/usr/local/bin/node';
const GUEST_BUSYBOX = '/bin/busybox';
const GUEST_MKE2FS = '/sbin/mke2fs';
const MKE2FS_ALIASES = ['mkfs.ext2', 'mkfs.ext3', 'mkfs.ext4'];
const GUEST_DMSETUP = '/sbin/dmsetup';
const MODULE_LIST_PATH = '/etc/dm-guest/modules';

// Modules that /init loads. modprobe also loads what they depend on.
export const REQUIRED_MODULES = [
  'loop', 'dm_mod', 'dm_thin_pool', 'dm_snapshot', 'dm_zero', 'dm_delay', 'dm_flakey', 'dm_crypt', 'ecb', 'xts',
];
const OPTIONAL_MODULES = ['overlay'];
// Module folders copied whole, so other device-mapper targets and the
// ciphers that dm-crypt requests at run time are there as well.
const MODULE_DIRECTORIES = ['kernel/drivers/md', 'kernel/crypto', 'kernel/lib', 'kernel/arch/x86/crypto'];

// Top-level folders created as on the host, so that library paths from ldd
// and the merged /usr layout of Debian 12 resolve the same way in the guest.
const MIRRORED_TOP_FOLDERS = ['/bin', '/sbin', '/lib', '/lib64', '/usr/lib64'];
// Mount points and home folders, with their permission bits.
const EMPTY_FOLDERS = {
  '/proc': 0o555,
  '/sys': 0o555,
  '/dev': 0o755,
  '/tmp': 0o1777,
  '/run': 0o755,
  '/mnt': 0o755,
  '/root': 0o700,
};
const EXECUTABLE_MODE = 0o755;

// Groups the image always has, with Debian's numbers; udev's rules add theirs.
const BASE_GROUPS = { root: 0, disk: 6, nogroup: 65534 };
// Numbers for rule groups that the host's /etc/group lacks, counting down.
const FIRST_SPARE_GID = 999;

const ETC_FILES = {
  '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  '/etc/hosts': '127.0.0.1\tlocalhost\n::1\tlocalhost\n',
  '/etc/hostname': 'dm-guest\n',
};

const BYTES_PER_MIB = 1024 * 1024;

export function formatMiB(bytes) {
  return `${Math.round(bytes / BYTES_PER_MIB)} MiB`;
}

function renderInit() {
  return readFileSync(INIT_TEMPLATE, 'utf8')
    .replaceAll('@EXIT_MARKER_PREFIX@', EXIT_MARKER_PREFIX)
    .replaceAll('@GUEST_PATH@', GUEST_PATH)
    .replaceAll('@MODULE_LIST@', MODULE_LIST_PATH)
    .replaceAll('@COMMAND_SCRIPT@', GUEST_COMMAND_SCRIPT)
    .replaceAll('@PROJECT_DIR@', GUEST_PROJECT_DIR)
    .replaceAll('@UDEV_MODE_FILE@', GUEST_UDEV_MODE_FILE)
    .replaceAll('@UDEVD@', GUEST_UDEVD)
    .replaceAll('@DM_NOTIFY_RULE@', `${GUEST_RULES_DIR}/${DM_NOTIFY_RULE}`);
}

function sha256(text) {
  return createHash('sha256').update(text).digest('hex');
}

function addWithLibraries(tree, hostPath, imagePath) {
  for (const library of sharedLibraries(hostPath)) {
    tree.addHostFile(library);
  }
  tree.addHostFile(hostPath, imagePath);
}

function addBusybox(tree, busybox) {
  addWithLibraries(tree, busybox, GUEST_BUSYBOX);
  // Applets become links to /bin/busybox unless a real tool is already there.
  const applets = run(busybox, ['--list-full']).split('\n').filter(Boolean);
  for (const applet of applets) {
    tree.addSymlink(`/${applet}`, GUEST_BUSYBOX);
  }
}

function addMke2fs(tree) {
  const mke2fs = findExecutable('mke2fs');
  if (mke2fs === null) {
    throw new GuestError('mke2fs not found on the host: install e2fsprogs');
  }
  addWithLibraries(tree, mke2fs, GUEST_MKE2FS);
  for (const alias of MKE2FS_ALIASES) {
    tree.addSymlink(posix.join(posix.dirname(GUEST_MKE2FS), alias), 'mke2fs');
  }
  if (existsSync('/etc/mke2fs.conf')) {
    tree.addHostFile('/etc/mke2fs.conf');
  }
}

// Debian's dmsetup, a peer for tests that compare the library with libdevmapper.
function addDmsetup(tree) {
  const dmsetup = findExecutable('dmsetup');
  if (dmsetup === null) {
    throw new GuestError('dmsetup not found on the host: install the dmsetup package');
  }
  addWithLibraries(tree, dmsetup, GUEST_DMSETUP);
}

/**
 * Debian's systemd-udevd with the rules for block devices and lvm2's dm
 * rules, so a run with DM_GUEST_UDEV meets udev as a normal host has it.
 * /init starts it only for such runs.
 */
function addUdev(tree, udev) {
  addWithLibraries(tree, udev.udevadm, GUEST_UDEVADM);
  tree.addSymlink(GUEST_UDEVD, GUEST_UDEVADM);
  tree.addHostFile(udev.udevConf, GUEST_UDEV_CONF);
  for (const [name, hostPath] of Object.entries(udev.rules)) {
    tree.addHostFile(hostPath, posix.join(GUEST_RULES_DIR, name));
  }
}

// Returns /etc/group with the base groups and every group the udev rules
// name, because udevd rejects rules whose group does not exist.
function groupFile(udev) {
  const hostGids = new Map();
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid !== undefined) {
      hostGids.set(name, Number(gid));
    }
  }
  const groups = new Map(Object.entries(BASE_GROUPS));
  const used = new Set(groups.values());
  let spare = FIRST_SPARE_GID;
  for (const name of ruleGroups(Object.values(udev.rules))) {
    if (groups.has(name)) {
      continue;
    }
    let gid = hostGids.get(name);
    if (gid === undefined || used.has(gid)) {
      while (used.has(spare) || [...hostGids.values()].includes(spare)) {
        spare--;
      }
      gid = spare;
    }
    groups.set(name, gid);
    used.add(gid);
  }
  return [...groups].map(([name, gid]) => `${name}:x:${gid}:\n`).join('');
}

function addModules(tree, kernel) {
  const selection = selectModules(kernel.modulesDir, {
    required: REQUIRED_MODULES,
    optional: OPTIONAL_MODULES,
    directories: MODULE_DIRECTORIES,
  });
  const guestModulesDir = `/lib/modules/${kernel.release}`;
  for (const file of selection.files) {
    tree.addHostFile(join(kernel.modulesDir, file), posix.join(guestModulesDir, file));
  }
  for (const [name, content] of Object.entries(selection.indexes)) {
    tree.addFile(posix.join(guestModulesDir, name), content);
  }
  tree.addFile(MODULE_LIST_PATH, `${selection.load.join('\n')}\n`);
  return selection;
}

function addSystemFiles(tree, udev) {
  for (const [folder, mode] of Object.entries(EMPTY_FOLDERS)) {
    tree.addDirectory(folder, mode);
  }
  for (const [path, content] of Object.entries(ETC_FILES)) {
    tree.addFile(path, content);
  }
  tree.addFile('/etc/group', groupFile(udev));
  tree.addSymlink('/etc/mtab', '/proc/self/mounts');
  tree.addFile('/init', renderInit(), EXECUTABLE_MODE);
}

function buildBaseTree(kernel, udev) {
  const tree = new ImageTree();
  for (const folder of MIRRORED_TOP_FOLDERS) {
    if (existsSync(folder)) {
      tree.addHostDirectory(folder);
    }
  }
  addWithLibraries(tree, process.execPath, GUEST_NODE);
  addMke2fs(tree);
  addDmsetup(tree);
  addUdev(tree, udev);
  const busybox = findExecutable('busybox');
  if (busybox === null) {
    throw new GuestError('busybox not found on the host: install busybox-static');
  }
  addBusybox(tree, busybox);
  const selection = addModules(tree, kernel);
  addSystemFiles(tree, udev);
  return { tree, moduleCount: selection.files.length };
}

/** Writes `tree` as a cpio archive to `path`, through a temporary file and a rename. */
export function writeTreeToFile(tree, path) {
  const temporaryPath = `${path}.tmp-${process.pid}`;
  const fd = openSync(temporaryPath, 'w');
  try {
    tree.writeArchive(new FileSink(fd));
  } catch (error) {
    closeSync(fd);
    rmSync(temporaryPath, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(temporaryPath, path);
}

// The inputs of the base image; a change to any of them triggers a rebuild.
function baseStamp(kernel, udev) {
  return {
    recipe: IMAGE_RECIPE_VERSION,
    kernelPackage: kernel.name,
    kernelVersion: kernel.version,
    node: process.version,
    nodePath: process.execPath,
    init: sha256(renderInit()),
    modules: { required: REQUIRED_MODULES, optional: OPTIONAL_MODULES, directories: MODULE_DIRECTORIES },
    udev: {
      version: udev.version,
      rules: Object.fromEntries(Object.entries(udev.rules).map(([name, path]) => [name, sha256(readFileSync(path, 'utf8'))])),
    },
  };
}

/**
 * Returns the path of the cached base image CACHE/base.cpio, building it
 * first when it is missing or its stamp differs from the current inputs.
 * `udev` is what prepareUdev() returned.
 */
export function ensureBaseImage(cacheDir, kernel, udev) {
  const imagePath = join(cacheDir, 'base.cpio');
  const stampPath = join(cacheDir, 'base.stamp.json');
  const stamp = `${JSON.stringify(baseStamp(kernel, udev), null, 2)}\n`;
  if (existsSync(imagePath) && existsSync(stampPath) && readFileSync(stampPath, 'utf8') === stamp) {
    return imagePath;
  }
  log('collecting files for the base image …');
  const { tree, moduleCount } = buildBaseTree(kernel, udev);
  log(`writing base image (${formatMiB(tree.fileBytes)}, ${tree.size} entries, ${moduleCount} kernel modules) to ${imagePath} …`);
  rmSync(stampPath, { force: true });
  writeTreeToFile(tree, imagePath);
  writeFileSync(stampPath, stamp);
  return imagePath;
}
