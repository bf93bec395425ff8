#!/usr/bin/env node
// Runs the kernel suite (dist/test/kernel) against a real device-mapper: in
// the project's QEMU guest by default, or on this host with DM_TEST_HOST=1.
//
// The guest runs it in two flavours: the whole suite without udev, where the
// library makes /dev/mapper nodes itself, then the udev tests with
// systemd-udevd and lvm2's rules running (DM_GUEST_UDEV=1), where the
// library waits for udev through cookies. On the host it runs once, in
// whatever udev situation the host is in.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const mocha = ['node_modules/mocha/bin/mocha.js', '--timeout', '120000'];
const SETUP = 'dist/test/kernel/setup.test.js';

const FLAVOURS = [
  { title: 'without udev', env: { DM_GUEST_UDEV: '0' }, files: [SETUP, 'dist/test/kernel/**/*.test.js'] },
  { title: 'with systemd-udevd and lvm2 rules', env: { DM_GUEST_UDEV: '1' }, files: [SETUP, 'dist/test/kernel/udev*.test.js'] },
];

function run(command, env) {
  const result = spawnSync(command[0], command.slice(1), { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  return result.status ?? 1;
}

let status = 0;
if (process.env.DM_TEST_HOST === '1') {
  if (process.getuid?.() !== 0) {
    console.error('DM_TEST_HOST=1 needs root: the kernel suite creates dm devices and loop devices');
    process.exit(1);
  }
  status = run([process.execPath, ...mocha, ...FLAVOURS[0].files], {});
} else {
  for (const flavour of FLAVOURS) {
    console.log(`\nKernel suite in the guest, ${flavour.title} (DM_GUEST_UDEV=${flavour.env.DM_GUEST_UDEV}):`);
    const flavourStatus = run([process.execPath, 'scripts/guest.mjs', '--', 'node', ...mocha, ...flavour.files], flavour.env);
    if (flavourStatus !== 0) status = flavourStatus;
  }
}
process.exit(status);
