#!/usr/bin/env node
// Runs the demos in examples/ (compiled to dist/): the thin pool, then the
// graphdriver registry with a layer chain on devicemapper. They run on this
// host when it has device-mapper and we are root, and in the project's QEMU
// guest otherwise. DM_DEMO_GUEST=1 forces the guest.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const demos = ['dist/examples/thin-demo.js', 'dist/examples/graphdriver-demo.js'];

function hostHasDeviceMapper() {
  try {
    return /\bdevice-mapper\b/.test(fs.readFileSync('/proc/misc', 'utf8')) || fs.existsSync('/sys/module/dm_mod');
  } catch {
    return false;
  }
}

const onHost = process.env.DM_DEMO_GUEST !== '1' && process.getuid?.() === 0 && hostHasDeviceMapper();
console.error(onHost ? 'demo: running on this host' : 'demo: this host has no device-mapper (or you are not root); running in the QEMU guest');
let status;
if (onHost) {
  for (const demo of demos) {
    status = spawnSync(process.execPath, [demo], { cwd: root, stdio: 'inherit' }).status ?? 1;
    if (status !== 0) break;
  }
} else {
  // One guest boot runs both demos, the second only when the first passed.
  const script = demos.map((demo) => `node ${demo}`).join(' && ');
  status = spawnSync(process.execPath, ['scripts/guest.mjs', '--', 'sh', '-c', script], { cwd: root, stdio: 'inherit' }).status ?? 1;
}
process.exit(status);
