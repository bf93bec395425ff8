// Host-side helpers: logging, running tools, and installing the Debian
// packages that the guest builder needs.

import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const COMMAND_OUTPUT_LIMIT = 64 * 1024 * 1024;

/** Runner failure that main() reports as "guest: error: ..." with exit status 125. */
export class GuestError extends Error {}

export function log(message) {
  process.stderr.write(`guest: ${message}\n`);
}

/**
 * Runs a program and returns its stdout. Throws a GuestError that includes
 * stderr when the program is missing or exits non-zero.
 */
export function run(program, args, { cwd, env, input } = {}) {
  const result = spawnSync(program, args, {
    cwd,
    env: env ?? process.env,
    input,
    encoding: 'utf8',
    maxBuffer: COMMAND_OUTPUT_LIMIT,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  const commandLine = [program, ...args].join(' ');
  if (result.error) {
    throw new GuestError(`failed to run ${commandLine}: ${result.error.message}`);
  }
  if (result.status !== 0) {
    const reason = result.signal ? `signal ${result.signal}` : `status ${result.status}`;
    throw new GuestError(`${commandLine} failed with ${reason}:\n${result.stderr.trim()}`);
  }
  return result.stdout;
}

// Like run(), but returns null in place of throwing.
export function tryRun(program, args, options) {
  try {
    return run(program, args, options);
  } catch (error) {
    if (error instanceof GuestError) {
      return null;
    }
    throw error;
  }
}

/** Returns the absolute path of an executable, searching PATH and then the sbin folders. */
export function findExecutable(name) {
  const folders = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const folder of folders.filter(Boolean)) {
    const candidate = join(folder, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this folder.
    }
  }
  return null;
}

/**
 * Installs the Debian packages that provide any missing tool. `tools` maps
 * an executable name to its package. Runs `apt-get update` and retries once
 * when the first install fails, because a fresh machine may have no
 * package lists.
 */
export function ensureHostTools(tools) {
  const missing = Object.entries(tools).filter(([tool]) => findExecutable(tool) === null);
  if (missing.length === 0) {
    return;
  }
  const packages = [...new Set(missing.map(([, pkg]) => pkg))];
  const names = missing.map(([tool]) => tool).join(', ');
  const installCommand = `apt-get install -y --no-install-recommends ${packages.join(' ')}`;
  if (findExecutable('apt-get') === null) {
    throw new GuestError(`missing ${names} and apt-get is not available: install ${packages.join(', ')} by hand`);
  }
  if (process.getuid() !== 0) {
    throw new GuestError(`missing ${names}: run this script as root so it can install ${packages.join(' ')}, or run "${installCommand}" as root`);
  }
  log(`installing ${packages.join(' ')} for ${names} …`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const args = ['install', '-y', '--no-install-recommends', ...packages];
  if (tryRun('apt-get', args, { env }) === null) {
    log('apt-get install failed; running apt-get update and retrying …');
    run('apt-get', ['update'], { env });
    run('apt-get', args, { env });
  }
  const stillMissing = missing.filter(([tool]) => findExecutable(tool) === null).map(([tool]) => tool);
  if (stillMissing.length > 0) {
    throw new GuestError(`${stillMissing.join(', ')} still not found after installing ${packages.join(' ')}`);
  }
}

/**
 * Returns the absolute paths of the shared libraries that `ldd` lists for
 * a binary, including the dynamic loader, or [] for a static binary.
 */
export function sharedLibraries(binary) {
  const result = spawnSync('ldd', [binary], { encoding: 'utf8' });
  if (result.error) {
    throw new GuestError(`failed to run ldd ${binary}: ${result.error.message}`);
  }
  // ldd exits 1 with "not a dynamic executable" for static binaries.
  if (result.status !== 0) {
    if (/not a dynamic executable/.test(result.stdout + result.stderr)) {
      return [];
    }
    throw new GuestError(`ldd ${binary} failed:\n${result.stderr.trim()}`);
  }
  const libraries = [];
  for (const line of result.stdout.split('\n')) {
    if (line.includes('not found')) {
      throw new GuestError(`ldd ${binary}: a library is missing on the host: ${line.trim()}`);
    }
    // Lines look like "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)"
    // or, for the loader, "/lib64/ld-linux-x86-64.so.2 (0x…)".
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (match) {
      libraries.push(match[1]);
    }
  }
  return libraries;
}
