// Fetches the Debian cloud kernel package into the cache, unpacks it without
// installing it, and selects the kernel modules that go into the guest image.

import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

import { aptEnvironment, downloadPackage } from './debian.mjs';
import { GuestError, log, run, tryRun } from './host.mjs';

// Debian meta package whose dependency names the current cloud kernel,
// for example linux-image-6.1.0-57-cloud-amd64 on bookworm.
export const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';
const COMPLETE_FILE = '.complete.json';
const MODULE_SUFFIX = /\.ko(\.(xz|zst|gz))?$/;
// Index files whose lines end with a module name, in the format "alias PATTERN MODULE".
const MODULE_ALIAS_FILES = ['modules.alias', 'modules.symbols'];
const MODULE_COPIED_FILES = ['modules.builtin', 'modules.order'];

// Returns { name, version } of the kernel package that the meta package depends on.
function queryKernelPackage() {
  const depends = run('apt-cache', ['depends', KERNEL_META_PACKAGE]);
  const match = /Depends:\s*(linux-image-\S+)/.exec(depends);
  if (!match) {
    throw new GuestError(`apt-cache depends ${KERNEL_META_PACKAGE} lists no linux-image-… dependency:\n${depends.trim()}`);
  }
  const name = match[1];
  const show = run('apt-cache', ['show', '--no-all-versions', name]);
  const version = /^Version:\s*(\S+)/m.exec(show)?.[1];
  if (!version) {
    throw new GuestError(`apt-cache show ${name} lists no Version field`);
  }
  return { name, version };
}

// Returns the newest kernel already unpacked in the cache, or null.
function newestCachedKernel(kernelsDir) {
  if (!existsSync(kernelsDir)) {
    return null;
  }
  const candidates = readdirSync(kernelsDir)
    .map((entry) => join(kernelsDir, entry, COMPLETE_FILE))
    .filter((file) => existsSync(file))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (candidates.length === 0) {
    return null;
  }
  const { name, version } = JSON.parse(readFileSync(candidates[0], 'utf8'));
  return { name, version };
}

/**
 * Resolves the kernel package through apt. Runs `apt-get update` once if the
 * lookup fails and this process is root. Falls back to the newest kernel in
 * the cache, so runs keep working offline once the cache is filled.
 */
function resolveKernelPackage(kernelsDir) {
  const first = tryQuery();
  if (first) {
    return first;
  }
  if (process.getuid() === 0) {
    log('apt-cache found no kernel package, so running apt-get update …');
    if (tryRun('apt-get', ['update'], { env: aptEnvironment() }) !== null) {
      const second = tryQuery();
      if (second) {
        return second;
      }
    }
  }
  const cached = newestCachedKernel(kernelsDir);
  if (cached) {
    log(`apt could not resolve ${KERNEL_META_PACKAGE}, so using the cached ${cached.name} ${cached.version}`);
    return cached;
  }
  // Run the query again so the error names the apt failure.
  return queryKernelPackage();
}

function tryQuery() {
  try {
    return queryKernelPackage();
  } catch (error) {
    if (error instanceof GuestError) {
      return null;
    }
    throw error;
  }
}

function findModulesRoot(unpackedDir) {
  for (const candidate of ['lib/modules', 'usr/lib/modules']) {
    const dir = join(unpackedDir, candidate);
    if (existsSync(dir)) {
      const releases = readdirSync(dir);
      if (releases.length !== 1) {
        throw new GuestError(`expected one kernel release in ${dir}, found ${releases.length}: ${releases.join(', ')}`);
      }
      return { release: releases[0], modulesDir: join(dir, releases[0]) };
    }
  }
  throw new GuestError(`no lib/modules folder in the unpacked kernel package at ${unpackedDir}`);
}

function unpackKernel(debPath, targetDir, packageInfo) {
  const temporaryDir = `${targetDir}.tmp-${process.pid}`;
  rmSync(temporaryDir, { recursive: true, force: true });
  log(`unpacking ${basename(debPath)} …`);
  run('dpkg-deb', ['-x', debPath, temporaryDir]);
  const { release, modulesDir } = findModulesRoot(temporaryDir);
  const vmlinuz = join(temporaryDir, 'boot', `vmlinuz-${release}`);
  if (!existsSync(vmlinuz)) {
    throw new GuestError(`kernel package ${basename(debPath)} has no boot/vmlinuz-${release}`);
  }
  // The .deb ships no modules.dep because Debian's postinst runs depmod.
  log(`generating modules.dep for ${release} …`);
  run('busybox', ['depmod', '-b', temporaryDir, release]);
  // Paths are stored relative to the kernel folder, so the cache can move.
  const info = { ...packageInfo, release, modulesSubdir: modulesDir.slice(temporaryDir.length + 1) };
  writeFileSync(join(temporaryDir, COMPLETE_FILE), `${JSON.stringify(info, null, 2)}\n`);
  rmSync(targetDir, { recursive: true, force: true });
  renameSync(temporaryDir, targetDir);
}

function kernelPaths(targetDir) {
  const info = JSON.parse(readFileSync(join(targetDir, COMPLETE_FILE), 'utf8'));
  return {
    name: info.name,
    version: info.version,
    release: info.release,
    vmlinuz: join(targetDir, 'boot', `vmlinuz-${info.release}`),
    modulesDir: join(targetDir, info.modulesSubdir),
  };
}

// Tells whether targetDir contains a finished unpack in the current format.
function isUnpacked(targetDir) {
  const completeFile = join(targetDir, COMPLETE_FILE);
  return existsSync(completeFile) && typeof JSON.parse(readFileSync(completeFile, 'utf8')).modulesSubdir === 'string';
}

function downloadAndUnpack(kernelsDir, packageInfo) {
  const targetDir = join(kernelsDir, `${packageInfo.name}_${packageInfo.version}`);
  if (!isUnpacked(targetDir)) {
    const debPath = downloadPackage(kernelsDir, packageInfo);
    unpackKernel(debPath, targetDir, packageInfo);
  }
  return kernelPaths(targetDir);
}

/**
 * Makes sure the current cloud kernel is downloaded and unpacked under
 * CACHE/kernel and returns { name, version, release, vmlinuz, modulesDir }.
 * When the download fails and this process is root, it runs
 * `apt-get update` and tries once more, because stale package lists may
 * name a kernel version that the mirror no longer has.
 */
export function prepareKernel(cacheDir) {
  const kernelsDir = join(cacheDir, 'kernel');
  mkdirSync(kernelsDir, { recursive: true });
  const packageInfo = resolveKernelPackage(kernelsDir);
  try {
    return downloadAndUnpack(kernelsDir, packageInfo);
  } catch (error) {
    if (!(error instanceof GuestError) || process.getuid() !== 0) {
      throw error;
    }
    log(`${error.message}\nguest: running apt-get update and trying again …`);
    run('apt-get', ['update'], { env: aptEnvironment() });
    return downloadAndUnpack(kernelsDir, resolveKernelPackage(kernelsDir));
  }
}

export function moduleName(path) {
  return basename(path).replace(MODULE_SUFFIX, '').replaceAll('-', '_');
}

// Parses modules.dep into a map from module name to { path, dependencies }.
function parseModulesDep(text) {
  const modules = new Map();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) {
      continue;
    }
    const path = line.slice(0, colon).trim();
    const dependencies = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean);
    modules.set(moduleName(path), { path, dependencies });
  }
  return modules;
}

// Adds a module and, recursively, the modules it depends on.
function addWithDependencies(modules, name, selectedPaths) {
  const module = modules.get(name);
  if (selectedPaths.has(module.path)) {
    return;
  }
  selectedPaths.add(module.path);
  for (const dependency of module.dependencies) {
    addWithDependencies(modules, moduleName(dependency), selectedPaths);
  }
}

// Keeps the lines of modules.alias or modules.symbols ("alias PATTERN MODULE") for selected modules.
function filterAliasLines(text, selectedNames) {
  return text
    .split('\n')
    .filter((line) => selectedNames.has(line.trim().split(/\s+/).at(-1)))
    .map((line) => `${line}\n`)
    .join('');
}

/**
 * Selects the modules for the image: every module under `directories`
 * (paths relative to the modules folder), the `required` and `optional`
 * modules, and everything these depend on according to modules.dep.
 * Throws if a required module is missing. Returns the selected module files,
 * the modules to load at boot, and the index files filtered to the selection.
 */
export function selectModules(modulesDir, { required, optional, directories }) {
  const depText = readFileSync(join(modulesDir, 'modules.dep'), 'utf8');
  const modules = parseModulesDep(depText);
  const missing = required.filter((name) => !modules.has(name));
  if (missing.length > 0) {
    throw new GuestError(`the kernel in ${modulesDir} has no module ${missing.join(', ')}`);
  }

  const load = [...required, ...optional.filter((name) => modules.has(name))];
  const selectedPaths = new Set();
  for (const [name, module] of modules) {
    if (directories.some((dir) => module.path.startsWith(`${dir}/`))) {
      addWithDependencies(modules, name, selectedPaths);
    }
  }
  for (const name of load) {
    addWithDependencies(modules, name, selectedPaths);
  }

  const indexes = filterIndexes(modulesDir, depText, selectedPaths);
  return { files: [...selectedPaths].sort(), load, indexes };
}

// Returns the contents of the module index files, reduced to the selected modules.
function filterIndexes(modulesDir, depText, selectedPaths) {
  const selectedNames = new Set([...selectedPaths].map(moduleName));
  const indexes = { 'modules.dep': filterDependencyLines(depText, selectedPaths) };
  for (const file of MODULE_ALIAS_FILES) {
    const path = join(modulesDir, file);
    indexes[file] = existsSync(path) ? filterAliasLines(readFileSync(path, 'utf8'), selectedNames) : '';
  }
  for (const file of MODULE_COPIED_FILES) {
    const path = join(modulesDir, file);
    if (existsSync(path)) {
      indexes[file] = readFileSync(path, 'utf8');
    }
  }
  return indexes;
}

// Keeps the modules.dep lines whose module is selected.
function filterDependencyLines(depText, selectedPaths) {
  return depText
    .split('\n')
    .filter((line) => selectedPaths.has(line.slice(0, line.indexOf(':')).trim()))
    .map((line) => `${line}\n`)
    .join('');
}
