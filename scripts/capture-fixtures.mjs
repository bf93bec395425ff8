#!/usr/bin/env node
// Records the ioctl buffers the library exchanges with a real kernel, for
// the unit tests in test/unit/fixtures.test.ts. Run it where device-mapper
// exists (the guest) and keep its stdout:
//   npm run build && node scripts/guest.mjs -- node scripts/capture-fixtures.mjs > fixtures/kernel-6.1.json
// Each record holds the request as sent (header plus payload) and the reply
// up to the kernel's data_size, both in hex.

import fs from 'node:fs';
import os from 'node:os';

import { DeviceMapper, DirectNodes, ThinPool } from '../dist/src/index.js';
import { libc } from '../dist/src/ioctl/libc.js';

const DM_IOCTL_SIZE = 312;
const PREFIX = 'fx-';
const real = libc();
const records = [];
let label = '';

function usedLength(buf) {
  let end = buf.length;
  while (end > DM_IOCTL_SIZE && buf[end - 1] === 0) end--;
  return Math.max(DM_IOCTL_SIZE, Math.ceil(end / 8) * 8);
}

const recording = {
  ...real,
  ioctlBuffer(fd, request, buf) {
    const sent = Buffer.from(buf.subarray(0, usedLength(buf)));
    const result = real.ioctlBuffer(fd, request, buf);
    const dataSize = buf.readUInt32LE(12);
    const reply = result < 0 ? Buffer.alloc(0) : Buffer.from(buf.subarray(0, Math.max(DM_IOCTL_SIZE, Math.min(dataSize, buf.length))));
    if ((request >>> 8 & 0xff) === 0xfd) {
      records.push({ label, request: request >>> 0, bufferSize: buf.length, result, sent: sent.toString('hex'), reply: reply.toString('hex') });
    }
    return result;
  },
};

async function capture(name, action) {
  label = name;
  await action();
  label = '';
}

label = 'version';
const dm = DeviceMapper.open({ libc: recording, nodeSync: new DirectNodes({ libc: real }) });
label = '';
const workDir = fs.mkdtempSync(`${os.tmpdir()}/fixtures-`);
try {
  await capture('create with uuid', () => dm.create(`${PREFIX}zero`, { uuid: `${PREFIX}zero-uuid` }));
  await capture('load two targets', () =>
    dm.load(`${PREFIX}zero`, [
      { start: 0n, length: 1000n, type: 'zero', params: '' },
      { start: 1000n, length: 24n, type: 'error', params: '' },
    ]),
  );
  await capture('resume', () => dm.resume(`${PREFIX}zero`));
  await capture('info', () => dm.info(`${PREFIX}zero`));
  await capture('info missing', () => dm.info(`${PREFIX}missing`));
  await capture('table', () => dm.table(`${PREFIX}zero`));
  await capture('status', () => dm.status(`${PREFIX}zero`));
  const zero = dm.info(`${PREFIX}zero`);
  await capture('create linear', async () => {
    await dm.createDevice(`${PREFIX}linear`, {
      table: [{ start: 0n, length: 512n, type: 'linear', params: `${zero.major}:${zero.minor} 8` }],
    });
  });
  await capture('deps', () => dm.deps(`${PREFIX}linear`));
  await capture('table with backslash', async () => {
    dm.create(`${PREFIX}escape`);
    try {
      dm.load(`${PREFIX}escape`, [{ start: 0n, length: 8n, type: 'linear', params: '/dev/no\\such 0' }]);
    } catch {
      // The kernel rejects the path; the request bytes are what matter.
    }
  });
  await capture('list devices', () => dm.listDevices());
  await capture('list versions', () => dm.listVersions());
  await capture('suspend noflush', () => dm.suspend(`${PREFIX}linear`, { noflush: true }));
  await capture('rename', () => dm.rename(`${PREFIX}linear`, `${PREFIX}renamed`));
  await capture('remove', () => dm.remove(`${PREFIX}renamed`));
  const dataFile = `${workDir}/data.img`;
  const metaFile = `${workDir}/meta.img`;
  const pool = await ThinPool.create(dm, { name: `${PREFIX}pool`, dataFile, metadataFile: metaFile, dataSize: 64 << 20, metadataSize: 4 << 20 });
  await capture('message create_thin', () => pool.createThin(1));
  await capture('message create_thin existing', () => {
    try {
      pool.createThin(1);
    } catch {
      // EEXIST is the point of this record.
    }
  });
  await capture('pool status', () => pool.status());
  await capture('pool table', () => dm.table(`${PREFIX}pool`));
  await pool.destroy();
  await capture('remove missing', () => dm.remove(`${PREFIX}missing`, { ignoreMissing: true }));
} finally {
  for (const name of [`${PREFIX}escape`, `${PREFIX}renamed`, `${PREFIX}linear`, `${PREFIX}zero`, `${PREFIX}pool`]) {
    await dm.remove(name, { ignoreMissing: true }).catch(() => undefined);
  }
  dm.close();
  fs.rmSync(workDir, { recursive: true, force: true });
}

const fixture = { kernel: os.release(), records: records.filter((r) => r.label !== '') };
process.stdout.write(`${JSON.stringify(fixture, null, 1)}\n`);
