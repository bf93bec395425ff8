#!/usr/bin/env node
// Runs examples/thin-demo (compiled to dist/) on this host when it has
// device-mapper and we are root, and in the project's QEMU guest otherwise.
// DM_DEMO_GUEST=1 forces the guest.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const demo = 'dist/examples/thin-demo.js';

function hostHasDeviceMapper() {
  try {
    return /\bdevice-mapper\b/.test(fs.readFileSync('/proc/misc', 'utf8')) || fs.existsSync('/sys/module/dm_mod');
  } catch {
    return false;
  }
}

const onHost = process.env.DM_DEMO_GUEST !== '1' && process.getuid?.() === 0 && hostHasDeviceMapper();
const command = onHost ? [process.execPath, demo] : [process.execPath, 'scripts/guest.mjs', '--', 'node', demo];
console.error(onHost ? 'demo: running on this host' : 'demo: this host has no device-mapper (or you are not root); running in the QEMU guest');
const result = spawnSync(command[0], command.slice(1), { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
