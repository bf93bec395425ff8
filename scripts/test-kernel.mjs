#!/usr/bin/env node
// Runs the kernel suite (dist/test/kernel) against a real device-mapper: in
// the project's QEMU guest by default, or on this host with DM_TEST_HOST=1.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const mochaArgs = ['node_modules/mocha/bin/mocha.js', '--timeout', '120000', 'dist/test/kernel/setup.test.js', 'dist/test/kernel/**/*.test.js'];

let command;
if (process.env.DM_TEST_HOST === '1') {
  if (process.getuid?.() !== 0) {
    console.error('DM_TEST_HOST=1 needs root: the kernel suite creates dm devices and loop devices');
    process.exit(1);
  }
  command = [process.execPath, ...mochaArgs];
} else {
  command = [process.execPath, 'scripts/guest.mjs', '--', 'node', ...mochaArgs];
}
const result = spawnSync(command[0], command.slice(1), { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
