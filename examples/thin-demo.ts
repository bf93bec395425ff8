// The main job, step by step: a thin pool over two sparse files on loop
// devices, a thin volume with ext4 on it, a snapshot that sees the volume's
// file, then a teardown that leaves nothing behind. Needs root and a kernel
// with device-mapper; `npm run demo` runs it in the project's guest otherwise.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { attachedLoopNumbers, mount, openDeviceMapper, ThinPool, umount } from '../src/index.js';

const MiB = 1024 * 1024;
const WORK_DIR = path.join(os.tmpdir(), 'dm-ioctl-demo');
const POOL = 'dmioctl-demo-pool';
const VOLUME = 'dmioctl-demo-volume';
const SNAPSHOT = 'dmioctl-demo-snapshot';
const VOLUME_SECTORS = (256n * BigInt(MiB)) / 512n;

function readBackingFile(loopNumber: number): string {
  try {
    return fs.readFileSync(`/sys/block/loop${loopNumber}/loop/backing_file`, 'utf8').trim();
  } catch {
    return '';
  }
}

function step(text: string): void {
  console.log(`\n== ${text}`);
}

function mkfsExt4(device: string): void {
  const result = spawnSync('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', device], { stdio: 'inherit' });
  if (result.error) throw new Error(`mkfs.ext4 could not run (${result.error.message}); install e2fsprogs`);
  if (result.status !== 0) throw new Error(`mkfs.ext4 ${device} exited with status ${result.status}`);
}

function formatBlocks(used: bigint, total: bigint, blockBytes: bigint): string {
  const percent = total === 0n ? 0 : Number((used * 10000n) / total) / 100;
  return `${used}/${total} blocks of ${blockBytes / 1024n} KiB (${percent}% used)`;
}

async function main(): Promise<void> {
  const dm = openDeviceMapper();
  const mounts: string[] = [];
  let pool: ThinPool | undefined;
  try {
    step('device-mapper');
    console.log(`kernel ${os.release()}, interface ${dm.version().join('.')}`);

    step('thin pool over two sparse files');
    fs.rmSync(WORK_DIR, { recursive: true, force: true });
    fs.mkdirSync(WORK_DIR, { recursive: true });
    pool = await ThinPool.create(dm, {
      name: POOL,
      dataFile: path.join(WORK_DIR, 'data.img'),
      metadataFile: path.join(WORK_DIR, 'metadata.img'),
      dataSize: 512 * MiB,
      metadataSize: 16 * MiB,
    });
    for (const [label, loop] of [['data    ', pool.dataLoop], ['metadata', pool.metadataLoop]] as const) {
      if (loop) console.log(`${label} ${loop.backingFile} on ${loop.path} (${loop.devString})`);
    }
    console.log(`pool     /dev/mapper/${POOL} (${pool.devString})`);
    console.log(`table    ${dm.table(POOL).map((t) => `${t.start} ${t.length} ${t.type} ${t.params}`).join('')}`);

    step('thin volume 1 of 256 MiB');
    pool.createThin(1);
    await pool.activateThin(VOLUME, 1, VOLUME_SECTORS);
    console.log(`message  create_thin 1`);
    console.log(`volume   /dev/mapper/${VOLUME}, table: ${dm.table(VOLUME)[0].type} ${dm.table(VOLUME)[0].params} (pool device and thin id)`);

    step('ext4 on the volume, mounted with mount(2)');
    mkfsExt4(`/dev/mapper/${VOLUME}`);
    const volumeDir = path.join(WORK_DIR, 'volume');
    fs.mkdirSync(volumeDir);
    mount(`/dev/mapper/${VOLUME}`, volumeDir, 'ext4');
    mounts.push(volumeDir);
    const text = `written on the thin volume at ${new Date().toISOString()}\n`;
    fs.writeFileSync(path.join(volumeDir, 'hello.txt'), text);
    console.log(`wrote    ${path.join(volumeDir, 'hello.txt')}: ${text.trim()}`);

    step('snapshot 2 of volume 1 (volume suspended around the message)');
    await pool.createSnapshot(2, 1);
    await pool.activateThin(SNAPSHOT, 2, VOLUME_SECTORS);
    console.log(`message  create_snap 2 1`);
    console.log(`snapshot /dev/mapper/${SNAPSHOT}, table: ${dm.table(SNAPSHOT)[0].type} ${dm.table(SNAPSHOT)[0].params} (pool device and thin id)`);
    fs.writeFileSync(path.join(volumeDir, 'hello.txt'), 'changed after the snapshot\n');

    step('mount the snapshot and read the file back');
    const snapshotDir = path.join(WORK_DIR, 'snapshot');
    fs.mkdirSync(snapshotDir);
    mount(`/dev/mapper/${SNAPSHOT}`, snapshotDir, 'ext4');
    mounts.push(snapshotDir);
    const readBack = fs.readFileSync(path.join(snapshotDir, 'hello.txt'), 'utf8');
    console.log(`snapshot ${readBack.trim()}`);
    console.log(`volume   ${fs.readFileSync(path.join(volumeDir, 'hello.txt'), 'utf8').trim()}`);
    if (readBack !== text) throw new Error('The snapshot does not hold the file as written before the snapshot');

    step('pool usage');
    const status = pool.status();
    if (status.state === 'ok') {
      const blockBytes = pool.dataBlockSize * 512n;
      console.log(`data     ${formatBlocks(status.usedDataBlocks, status.totalDataBlocks, blockBytes)}`);
      console.log(`metadata ${formatBlocks(status.usedMetadataBlocks, status.totalMetadataBlocks, 4096n)}`);
      console.log(`status   ${dm.status(POOL)[0].params}`);
    }
  } finally {
    step('teardown: unmount, thin devices, pool, loop devices');
    for (const dir of mounts.reverse()) umount(dir);
    await pool?.destroy();
    dm.close();
    fs.rmSync(WORK_DIR, { recursive: true, force: true });
    const devices = fs.existsSync('/dev/mapper') ? fs.readdirSync('/dev/mapper').filter((n) => n.startsWith('dmioctl-demo')) : [];
    const loops = attachedLoopNumbers().filter((n) => readBackingFile(n).startsWith(WORK_DIR)).map((n) => `/dev/loop${n}`);
    const left = [...devices, ...loops];
    console.log(left.length === 0 ? 'nothing left behind: no dm device, node or loop device' : `left behind: ${left.join(' ')}`);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? `demo failed: ${error.message}` : error);
  process.exit(1);
});
