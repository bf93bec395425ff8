// Fetches Debian's udev package into the cache for the guest's udev flavour,
// and finds lvm2's dm rules that the host's dmsetup package installed.
// systemd-udevd then runs in the guest when a run sets DM_GUEST_UDEV, so
// tests can meet real udev and lvm2's rules.

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { aptEnvironment, downloadPackage } from './debian.mjs';
import { GuestError, log, run, tryRun } from './host.mjs';

export const UDEV_PACKAGE = 'udev';
// udev and libudev1 come from the same source package, so the host's
// libudev1 names the udev version that matches the host's libraries.
const VERSION_SOURCE_PACKAGE = 'libudev1';
const COMPLETE_FILE = '.complete.json';

/** Rules from the udev package that the guest needs for block devices. */
export const UDEV_RULES = ['50-udev-default.rules', '60-block.rules', '60-persistent-storage.rules'];
/** lvm2's rules from Debian's dmsetup package: /dev/mapper links, by-id links, and the cookie notification. */
export const DM_RULES = ['55-dm.rules', '60-persistent-storage-dm.rules', '95-dm-notify.rules'];
/** The rule that runs `dmsetup udevcomplete`; the no-notify flavour leaves it out. */
export const DM_NOTIFY_RULE = '95-dm-notify.rules';
const RULE_FOLDERS = ['lib/udev/rules.d', 'usr/lib/udev/rules.d'];
const UDEVADM_PATHS = ['bin/udevadm', 'usr/bin/udevadm'];

/**
 * Values of DM_GUEST_UDEV. Unset, empty or 0 runs without udev. 1 starts
 * systemd-udevd with all rules. no-notify starts it without
 * 95-dm-notify.rules, so udev never completes a cookie.
 */
export const GUEST_UDEV_MODES = ['1', 'no-notify'];

/** Returns the udev mode that DM_GUEST_UDEV requests, or null for none. */
export function guestUdevMode(environment = process.env) {
  const value = environment.DM_GUEST_UDEV;
  if (value === undefined || value === '' || value === '0') {
    return null;
  }
  if (!GUEST_UDEV_MODES.includes(value)) {
    throw new GuestError(`invalid DM_GUEST_UDEV=${JSON.stringify(value)}: use 1 (udev with lvm2's rules), no-notify (without ${DM_NOTIFY_RULE}) or 0`);
  }
  return value;
}

function hostPackageVersion(name) {
  const version = tryRun('dpkg-query', ['-W', '-f=${Version}', name])?.trim();
  return version || null;
}

function candidateVersion(name) {
  const policy = tryRun('apt-cache', ['policy', name]) ?? '';
  const candidate = /Candidate:\s*(\S+)/.exec(policy)?.[1];
  return candidate && candidate !== '(none)' ? candidate : null;
}

function unpack(debPath, targetDir, info) {
  const temporaryDir = `${targetDir}.tmp-${process.pid}`;
  rmSync(temporaryDir, { recursive: true, force: true });
  run('dpkg-deb', ['-x', debPath, temporaryDir]);
  writeFileSync(join(temporaryDir, COMPLETE_FILE), `${JSON.stringify(info, null, 2)}\n`);
  rmSync(targetDir, { recursive: true, force: true });
  renameSync(temporaryDir, targetDir);
}

function downloadAndUnpack(udevDir, version) {
  const targetDir = join(udevDir, `${UDEV_PACKAGE}_${version}`);
  if (!existsSync(join(targetDir, COMPLETE_FILE))) {
    const deb = downloadPackage(udevDir, { name: UDEV_PACKAGE, version });
    log(`unpacking ${UDEV_PACKAGE} ${version} …`);
    unpack(deb, targetDir, { name: UDEV_PACKAGE, version });
  }
  return targetDir;
}

function firstExisting(root, candidates, what) {
  for (const candidate of candidates) {
    const path = join(root, candidate);
    if (existsSync(path)) {
      return path;
    }
  }
  throw new GuestError(`no ${what} in ${root} (looked for ${candidates.join(', ')})`);
}

/** Finds lvm2's dm rules on the host, where the dmsetup package puts them. */
function hostDmRules() {
  const rules = {};
  for (const name of DM_RULES) {
    rules[name] = firstExisting('/', RULE_FOLDERS.map((folder) => join(folder, name)), `${name} from the dmsetup package`);
  }
  return rules;
}

/**
 * Downloads the udev package whose version matches the host's libudev1 (or,
 * when the mirror no longer has that version, the candidate version) into
 * CACHE/udev and returns { version, udevadm, udevConf, rules }, where rules
 * maps each rule file name to its host path.
 */
export function prepareUdev(cacheDir) {
  const udevDir = join(cacheDir, 'udev');
  mkdirSync(udevDir, { recursive: true });
  const pinned = hostPackageVersion(VERSION_SOURCE_PACKAGE);
  let version = pinned ?? candidateVersion(UDEV_PACKAGE);
  if (!version) {
    throw new GuestError(`cannot tell which ${UDEV_PACKAGE} version to fetch: ${VERSION_SOURCE_PACKAGE} is not installed and apt-cache knows no candidate`);
  }
  let root;
  try {
    root = downloadAndUnpack(udevDir, version);
  } catch (error) {
    if (!(error instanceof GuestError)) {
      throw error;
    }
    if (process.getuid() === 0) {
      log(`${error.message}\nguest: running apt-get update and trying again …`);
      tryRun('apt-get', ['update'], { env: aptEnvironment() });
    }
    // udevadm links only to common libraries (no libsystemd-shared), so a
    // newer build of the same release runs as well on these hosts.
    const fallback = candidateVersion(UDEV_PACKAGE) ?? version;
    if (fallback !== version) {
      log(`${UDEV_PACKAGE} ${version} (the host's ${VERSION_SOURCE_PACKAGE} version) could not be fetched, so using ${fallback}`);
    }
    version = fallback;
    root = downloadAndUnpack(udevDir, version);
  }
  const rules = {};
  for (const name of UDEV_RULES) {
    rules[name] = firstExisting(root, RULE_FOLDERS.map((folder) => join(folder, name)), name);
  }
  Object.assign(rules, hostDmRules());
  return {
    version,
    udevadm: firstExisting(root, UDEVADM_PATHS, 'udevadm'),
    udevConf: firstExisting(root, ['etc/udev/udev.conf'], 'udev.conf'),
    rules,
  };
}

/** Returns the group names that GROUP="..." assignments in the rule files name. */
export function ruleGroups(rulePaths) {
  const groups = new Set();
  for (const path of rulePaths) {
    for (const match of readFileSync(path, 'utf8').matchAll(/\bGROUP:?="([^"]+)"/g)) {
      groups.add(match[1]);
    }
  }
  return [...groups].sort();
}
