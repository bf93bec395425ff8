// The graphdriver registry and the devicemapper driver: which driver the
// default priority picks, then a three-layer chain of thin snapshots.
// Needs root and device-mapper (scripts/demo.mjs runs it in the QEMU guest).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { newDriver } from '../src/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'graphdriver-demo-'));
// Small sizes keep a tmpfs guest light; the defaults are Docker's 10G base over 100G of data.
const options = ['dm.basesize=64M', 'dm.loopdatasize=2G', 'dm.loopmetadatasize=16M', 'dm.mkfsarg=-E', 'dm.mkfsarg=nodiscard,lazy_itable_init=1'];

const driver = await newDriver(root, { options, env: {} });
try {
  console.log(`driver chosen by priority (aufs, devicemapper, vfs): ${driver.name}`);
  const layers = [
    { id: 'layer1', parent: undefined, file: 'etc/os-release', text: 'NAME=demo\n' },
    { id: 'layer2', parent: 'layer1', file: 'usr/bin/tool', text: '#!/bin/sh\necho tool\n' },
    { id: 'layer3', parent: 'layer2', file: 'app/config', text: 'debug=false\n' },
  ];
  for (const layer of layers) {
    await driver.create(layer.id, layer.parent);
    const dir = await driver.get(layer.id);
    fs.mkdirSync(path.join(dir, path.dirname(layer.file)), { recursive: true });
    fs.writeFileSync(path.join(dir, layer.file), layer.text);
    await driver.put(layer.id);
    console.log(`created ${layer.id}${layer.parent ? ` as a snapshot of ${layer.parent}` : ' from the base device'}, added /${layer.file}`);
  }
  for (const layer of layers) {
    const changes = await driver.changes(layer.id);
    const dir = await driver.get(layer.id);
    const files = layers.filter((other) => fs.existsSync(path.join(dir, other.file))).map((other) => `/${other.file}`);
    await driver.put(layer.id);
    console.log(`${layer.id}: sees ${files.join(', ')}; changes: ${changes.map((change) => `${change.kind} ${change.path}`).join(', ')}`);
  }
  console.log('status:');
  for (const [key, value] of driver.status()) console.log(`  ${key}: ${value}`);
} finally {
  await driver.cleanup();
  fs.rmSync(root, { recursive: true, force: true });
}
