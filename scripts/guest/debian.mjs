// Debian package helpers shared by the kernel and udev downloads: fetch a
// package into a cache folder with apt-get download, without installing it.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';

import { GuestError, log, run } from './host.mjs';

export function aptEnvironment() {
  return { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
}

/** Downloads NAME=VERSION into `folder` unless its .deb is there already, and returns the .deb's path. */
export function downloadPackage(folder, { name, version }) {
  // apt-get names the file NAME_VERSION_ARCH.deb, with ":" escaped as "%3a".
  const prefix = `${name}_${version.replaceAll(':', '%3a')}_`;
  const findDeb = () => readdirSync(folder).find((file) => file.startsWith(prefix) && file.endsWith('.deb'));
  if (!findDeb()) {
    log(`downloading ${name} ${version} …`);
    run('apt-get', ['download', `${name}=${version}`], { cwd: folder, env: aptEnvironment() });
  }
  const deb = findDeb();
  if (!deb) {
    throw new GuestError(`apt-get download ${name}=${version} left no ${prefix}*.deb in ${folder}`);
  }
  return join(folder, deb);
}
