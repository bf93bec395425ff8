// Codecs checked against ioctl buffers recorded on a real 6.1 kernel by
// scripts/capture-fixtures.mjs: requests the kernel accepted must be the
// bytes the encoders produce today, and replies the kernel wrote must decode
// to the devices and tables the capture script made.

import fs from 'node:fs';

import { expect } from 'chai';

import {
  commandName,
  decodeDev,
  decodeHeader,
  decodeNameList,
  decodeTargetDeps,
  decodeTargetMsg,
  decodeTargetSpecs,
  decodeTargetVersions,
  DM_COMMAND_MIN_VERSION,
  DM_IOCTL_SIZE,
  encodeHeader,
  encodeTargetMsg,
  encodeTargetSpecs,
  parseThinPoolParams,
  parseThinPoolStatus,
} from '../../src/index.js';

interface CaptureRecord {
  label: string;
  request: number;
  bufferSize: number;
  result: number;
  sent: string;
  reply: string;
}

const fixture = JSON.parse(
  fs.readFileSync(new URL('../../../fixtures/kernel-6.1.json', import.meta.url), 'utf8'),
) as { kernel: string; records: CaptureRecord[] };

function records(label: string): CaptureRecord[] {
  const found = fixture.records.filter((r) => r.label === label);
  if (found.length === 0) throw new Error(`fixture has no record labelled ${JSON.stringify(label)}`);
  return found;
}

function sent(label: string, index = 0): Buffer {
  return Buffer.from(records(label)[index].sent, 'hex');
}

function reply(label: string, index = 0): Buffer {
  return Buffer.from(records(label)[index].reply, 'hex');
}

/** Encodes a request the way the client does, trimmed to the recorded length. */
function encodeRequest(record: CaptureRecord, fields: Parameters<typeof encodeHeader>[1], payload?: (buf: Buffer) => void): Buffer {
  const buf = Buffer.alloc(record.bufferSize);
  encodeHeader(buf, fields);
  payload?.(buf);
  return buf.subarray(0, record.sent.length / 2);
}

describe('kernel fixtures', function () {
  it('cover a 6.1 kernel', function () {
    expect(fixture.kernel).to.match(/^6\.1\./);
  });

  it('requests carry each command minimum version', function () {
    for (const record of fixture.records) {
      const command = commandName(record.request & 0xff);
      expect(command, record.label).to.not.equal(undefined);
      if (command === undefined) continue;
      expect(decodeHeader(Buffer.from(record.sent, 'hex')).version, record.label).to.deep.equal(DM_COMMAND_MIN_VERSION[command]);
    }
  });

  it('replies carry interface 4.47.0', function () {
    for (const record of fixture.records.filter((r) => r.result === 0)) {
      expect(decodeHeader(Buffer.from(record.reply, 'hex')).version, record.label).to.deep.equal([4, 47, 0]);
    }
  });

  it('create request matches the encoder', function () {
    const [record] = records('create with uuid');
    const expected = encodeRequest(record, { version: [4, 0, 0], dataSize: record.bufferSize, name: 'fx-zero', uuid: 'fx-zero-uuid' });
    expect(sent('create with uuid').equals(expected)).to.equal(true);
  });

  it('load request matches the encoder', function () {
    const [record] = records('load two targets');
    const table = [
      { start: 0n, length: 1000n, type: 'zero', params: '' },
      { start: 1000n, length: 24n, type: 'error', params: '' },
    ];
    const expected = encodeRequest(record, { version: [4, 0, 0], dataSize: record.bufferSize, targetCount: 2, name: 'fx-zero' }, (buf) =>
      encodeTargetSpecs(buf, DM_IOCTL_SIZE, table),
    );
    expect(sent('load two targets').equals(expected)).to.equal(true);
  });

  it('load escapes a backslash in parameters', function () {
    const request = sent('table with backslash', 1);
    expect(request.toString('latin1')).to.contain('/dev/no\\\\such 0');
    expect(records('table with backslash')[1].result).to.equal(-19);
  });

  it('message request matches the encoder', function () {
    const [record] = records('message create_thin');
    const request = sent('message create_thin');
    expect(decodeTargetMsg(request, DM_IOCTL_SIZE, request.length)).to.deep.equal({ sector: 0n, message: 'create_thin 1' });
    const expected = encodeRequest(record, { version: [4, 2, 0], dataSize: record.bufferSize, name: 'fx-pool' }, (buf) =>
      encodeTargetMsg(buf, DM_IOCTL_SIZE, 0n, 'create_thin 1'),
    );
    expect(request.equals(expected)).to.equal(true);
  });

  it('rename request carries the new name', function () {
    const request = sent('rename');
    expect(request.toString('utf8', DM_IOCTL_SIZE, DM_IOCTL_SIZE + 'fx-renamed'.length)).to.equal('fx-renamed');
    expect(decodeHeader(request).name).to.equal('fx-linear');
  });

  it('info reply decodes the device', function () {
    const header = decodeHeader(reply('info'));
    expect(header.name).to.equal('fx-zero');
    expect(header.uuid).to.equal('fx-zero-uuid');
    expect(header.targetCount).to.equal(2);
    expect(decodeDev(header.dev).major).to.be.greaterThan(0);
  });

  it('missing device returns ENXIO', function () {
    expect(records('info missing')[0].result).to.equal(-6);
    expect(records('remove missing')[0].result).to.equal(-6);
  });

  it('existing thin id returns EEXIST', function () {
    expect(records('message create_thin existing')[0].result).to.equal(-17);
  });

  it('table reply decodes both targets', function () {
    const buf = reply('table');
    const header = decodeHeader(buf);
    const targets = decodeTargetSpecs(buf, header.dataStart, header.dataSize, header.targetCount);
    expect(targets.map((t) => [t.start, t.length, t.type, t.params])).to.deep.equal([
      [0n, 1000n, 'zero', ''],
      [1000n, 24n, 'error', ''],
    ]);
  });

  it('list reply decodes names, uuids and event numbers', function () {
    const buf = reply('list devices');
    const header = decodeHeader(buf);
    const entries = decodeNameList(buf, header.dataStart, header.dataSize, true);
    const zero = entries.find((e) => e.name === 'fx-zero');
    expect(zero?.uuid).to.equal('fx-zero-uuid');
    expect(zero?.eventNr).to.equal(0);
    const linear = entries.find((e) => e.name === 'fx-linear');
    expect(linear).to.not.equal(undefined);
    expect(linear?.uuid).to.equal(undefined);
    expect(entries.map((e) => e.name).sort()).to.deep.equal(['fx-escape', 'fx-linear', 'fx-zero']);
  });

  it('versions reply lists the thin targets', function () {
    const buf = reply('list versions');
    const header = decodeHeader(buf);
    const versions = decodeTargetVersions(buf, header.dataStart, header.dataSize);
    const names = versions.map((v) => v.name);
    expect(names).to.include.members(['linear', 'zero', 'thin-pool', 'thin']);
    expect(versions.find((v) => v.name === 'thin-pool')?.version).to.deep.equal([1, 22, 0]);
  });

  it('deps reply names the lower device', function () {
    const buf = reply('deps');
    const header = decodeHeader(buf);
    const zeroDev = decodeHeader(reply('info')).dev;
    expect(decodeTargetDeps(buf, header.dataStart, header.dataSize)).to.deep.equal([zeroDev]);
  });

  it('pool table and status parse', function () {
    const tableBuf = reply('pool table');
    const tableHeader = decodeHeader(tableBuf);
    const [table] = decodeTargetSpecs(tableBuf, tableHeader.dataStart, tableHeader.dataSize, 1);
    const params = parseThinPoolParams(table.params);
    expect(params.dataBlockSize).to.equal(128n);
    expect(params.lowWaterMark).to.equal(32768n);
    expect(table.length).to.equal(131072n);

    const statusBuf = reply('pool status');
    const statusHeader = decodeHeader(statusBuf);
    const [status] = decodeTargetSpecs(statusBuf, statusHeader.dataStart, statusHeader.dataSize, 1);
    const parsed = parseThinPoolStatus(status.params);
    expect(parsed.state).to.equal('ok');
    if (parsed.state !== 'ok') return;
    expect(parsed.totalDataBlocks).to.equal(1024n);
    expect(parsed.mode).to.equal('rw');
  });

  it('suspend reply sets the suspended flag', function () {
    expect(decodeHeader(reply('suspend noflush')).flags & 2).to.equal(2);
    expect(decodeHeader(sent('suspend noflush')).flags).to.equal((1 << 1) | (1 << 11));
  });
});
