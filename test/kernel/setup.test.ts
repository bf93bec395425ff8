// Root hooks of the kernel suite: print where it runs, clean before and after.

import fs from 'node:fs';
import os from 'node:os';

import { openDeviceMapper } from '../../src/index.js';
import { cleanUp } from './helpers.js';

before(async function () {
  const dm = openDeviceMapper();
  try {
    const targets = dm.listVersions().map((t) => `${t.name}-${t.version.join('.')}`).sort();
    console.log(`kernel ${os.release()}, device-mapper interface ${dm.version().join('.')}`);
    console.log(`targets: ${targets.join(' ')}`);
    if (!fs.existsSync('/sys/module/loop')) console.log('loop module not loaded');
    await cleanUp(dm);
  } finally {
    dm.close();
  }
});

after(async function () {
  await cleanUp();
});
