// The struct codecs against bytes laid out by hand from
// include/uapi/linux/dm-ioctl.h, never against the encoder under test.

import { expect } from 'chai';

import {
  align8,
  decodeDev,
  decodeHeader,
  decodeNameList,
  decodeTargetDeps,
  decodeTargetMsg,
  decodeTargetSpecs,
  decodeTargetVersions,
  encodeDev,
  encodeHeader,
  encodeTargetMsg,
  encodeTargetSpecs,
  escapeParams,
  formatDev,
  readCString,
  targetMsgSize,
  targetSpecSize,
  writeCString,
} from '../../src/ioctl/codec.js';

/** Bytes of `text` followed by a NUL. */
function cString(text: string): Buffer {
  return Buffer.from(`${text}\0`, 'utf8');
}

describe('struct dm_ioctl codec', function () {
  it('encodeHeader writes fixed fields', function () {
    const buf = Buffer.alloc(16384);
    encodeHeader(buf, {
      version: [4, 1, 0],
      dataSize: 16384,
      dataStart: 312,
      targetCount: 2,
      flags: 0x4001,
      eventNr: 0x0d4d0001,
      dev: 0xfd03n,
    });
    const expected =
      '04000000' + '01000000' + '00000000' + // version
      '00400000' + // data_size 16384
      '38010000' + // data_start 312
      '02000000' + // target_count
      '00000000' + // open_count
      '01400000' + // flags
      '01004d0d' + // event_nr
      '00000000' + // padding
      '03fd000000000000'; // dev
    expect(buf.subarray(0, 48).toString('hex')).to.equal(expected);
  });

  it('encodeHeader writes name and uuid', function () {
    const buf = Buffer.alloc(312, 0xff);
    encodeHeader(buf, { version: [4, 0, 0], dataSize: 312, name: 'vol', uuid: 'LVM-x' });
    expect(buf.subarray(48, 176)).to.deep.equal(Buffer.concat([Buffer.from('vol'), Buffer.alloc(125)]));
    expect(buf.subarray(176, 305)).to.deep.equal(Buffer.concat([Buffer.from('LVM-x'), Buffer.alloc(124)]));
    expect(buf.subarray(305, 312)).to.deep.equal(Buffer.alloc(7));
  });

  it('encodeHeader defaults data_start to 312', function () {
    const buf = Buffer.alloc(400);
    encodeHeader(buf, { version: [4, 0, 0], dataSize: 400 });
    expect(buf.readUInt32LE(16)).to.equal(312);
  });

  it('encodeHeader rejects data_size below 312', function () {
    expect(() => encodeHeader(Buffer.alloc(400), { version: [4, 0, 0], dataSize: 311 })).to.throw(RangeError);
  });

  it('encodeHeader rejects data_size past buffer', function () {
    expect(() => encodeHeader(Buffer.alloc(400), { version: [4, 0, 0], dataSize: 401 })).to.throw(RangeError);
  });

  it('encodeHeader rejects unaligned data_start', function () {
    expect(() => encodeHeader(Buffer.alloc(400), { version: [4, 0, 0], dataSize: 400, dataStart: 313 })).to.throw(RangeError);
  });

  it('encodeHeader rejects 128-byte name', function () {
    expect(() => encodeHeader(Buffer.alloc(400), { version: [4, 0, 0], dataSize: 400, name: 'a'.repeat(128) })).to.throw(RangeError);
  });

  it('decodeHeader reads hand-built reply', function () {
    const buf = Buffer.alloc(312);
    buf.writeUInt32LE(4, 0);
    buf.writeUInt32LE(47, 4);
    buf.writeUInt32LE(0, 8);
    buf.writeUInt32LE(305, 12);
    buf.writeUInt32LE(312, 16);
    buf.writeUInt32LE(1, 20);
    buf.writeInt32LE(-1, 24);
    buf.writeUInt32LE(0x21, 28);
    buf.writeUInt32LE(9, 32);
    buf.writeBigUInt64LE(0x701n, 40);
    buf.write('pool', 48);
    buf.write('uuid-1', 176);
    expect(decodeHeader(buf)).to.deep.equal({
      version: [4, 47, 0],
      dataSize: 305,
      dataStart: 312,
      targetCount: 1,
      openCount: -1,
      flags: 0x21,
      eventNr: 9,
      dev: 0x701n,
      name: 'pool',
      uuid: 'uuid-1',
    });
  });

  it('decodeHeader bounds unterminated name', function () {
    const buf = Buffer.alloc(312);
    buf.fill(0x61, 48, 176);
    buf.write('u', 176);
    expect(decodeHeader(buf).name).to.equal('a'.repeat(128));
  });

  it('header round trip keeps fields', function () {
    const buf = Buffer.alloc(1024);
    encodeHeader(buf, { version: [4, 2, 0], dataSize: 1024, flags: 1 << 17, eventNr: 5, dev: 0x10010300n, name: 'é-name', uuid: 'u' });
    const header = decodeHeader(buf);
    expect(header.version).to.deep.equal([4, 2, 0]);
    expect(header.flags).to.equal(1 << 17);
    expect(header.eventNr).to.equal(5);
    expect(header.dev).to.equal(0x10010300n);
    expect(header.name).to.equal('é-name');
    expect(header.uuid).to.equal('u');
  });

  it('codec honours Buffer byteOffset', function () {
    // A subarray shares memory with its parent from byteOffset on. Writing
    // at offset 0 of the parent would corrupt the bytes in front of it.
    const parent = Buffer.alloc(1024, 0xaa);
    const view = parent.subarray(104, 104 + 400);
    expect(view.byteOffset).to.not.equal(0);
    encodeHeader(view, { version: [4, 0, 0], dataSize: 400, name: 'x' });
    expect(parent.readUInt32LE(104 + 12)).to.equal(400);
    expect(parent[104 + 48]).to.equal(0x78);
    expect(parent[103]).to.equal(0xaa);
    expect(parent[104 + 312]).to.equal(0xaa);
    expect(decodeHeader(view).name).to.equal('x');
    expect(decodeHeader(view).dataSize).to.equal(400);
  });
});

describe('struct dm_target_spec codec', function () {
  const specs = [
    { start: 0n, length: 100n, type: 'linear', params: '7:0 0' },
    { start: 100n, length: 50n, type: 'zero', params: '' },
    { start: 150n, length: 8n, type: 'linear', params: '7:1 2048' },
  ];

  it('targetSpecSize pads to 8 bytes', function () {
    // 40-byte header + parameters + NUL, rounded up to 8.
    expect(specs.map(targetSpecSize)).to.deep.equal([48, 48, 56]);
  });

  it('encodeTargetSpecs writes first spec', function () {
    const buf = Buffer.alloc(1024);
    encodeTargetSpecs(buf, 312, specs);
    const expected =
      '0000000000000000' + // sector_start 0
      '6400000000000000' + // length 100
      '00000000' + // status
      '30000000' + // next 48, counted from this spec
      '6c696e65617200000000000000000000' + // "linear", 16 bytes
      '373a302030000000'; // "7:0 0", NUL, padding
    expect(buf.subarray(312, 360).toString('hex')).to.equal(expected);
  });

  it('encodeTargetSpecs chains next per spec', function () {
    const buf = Buffer.alloc(1024);
    const end = encodeTargetSpecs(buf, 312, specs);
    expect(end).to.equal(312 + 48 + 48 + 56);
    expect(buf.readUInt32LE(360 + 20)).to.equal(48);
    expect(buf.readUInt32LE(408 + 20)).to.equal(56);
    expect(buf.readBigUInt64LE(408)).to.equal(150n);
    expect(buf.subarray(448, 457)).to.deep.equal(cString('7:1 2048'));
  });

  it('encodeTargetSpecs escapes backslashes', function () {
    const buf = Buffer.alloc(128);
    encodeTargetSpecs(buf, 0, [{ start: 0n, length: 1n, type: 'crypt', params: 'a\\b' }]);
    // On the wire: a \ \ b NUL.
    expect(buf.subarray(40, 45).toString('hex')).to.equal('615c5c6200');
  });

  it('escapeParams doubles each backslash', function () {
    expect(escapeParams('a\\b\\\\c')).to.equal('a\\\\b\\\\\\\\c');
  });

  it('encodeTargetSpecs rejects 16-byte type', function () {
    expect(() => encodeTargetSpecs(Buffer.alloc(128), 0, [{ start: 0n, length: 1n, type: 'abcdefghijklmnop', params: '' }])).to.throw(
      RangeError,
    );
  });

  /** Builds a DM_TABLE_STATUS reply, in which `next` counts from the data area start. */
  function statusReply(): { buf: Buffer; end: number } {
    const buf = Buffer.alloc(312 + 200);
    const spec = (at: number, start: bigint, length: bigint, type: string, params: string, next: number): void => {
      buf.writeBigUInt64LE(start, 312 + at);
      buf.writeBigUInt64LE(length, 312 + at + 8);
      buf.writeUInt32LE(next, 312 + at + 20);
      buf.write(type, 312 + at + 24);
      cString(params).copy(buf, 312 + at + 40);
    };
    spec(0, 0n, 100n, 'linear', '7:0 0', 48);
    spec(48, 100n, 50n, 'thin-pool', '0 ', 96);
    spec(96, 150n, 8n, 'zero', 'x y', 144);
    // data_size ends right after the last string, unaligned.
    return { buf, end: 312 + 96 + 40 + 4 };
  }

  it('decodeTargetSpecs follows data-relative next', function () {
    const { buf, end } = statusReply();
    const targets = decodeTargetSpecs(buf, 312, end, 3);
    expect(targets.map((t) => t.type)).to.deep.equal(['linear', 'thin-pool', 'zero']);
    expect(targets[2]).to.deep.equal({ start: 150n, length: 8n, status: 0, type: 'zero', params: 'x y' });
  });

  it('decodeTargetSpecs trims trailing space', function () {
    const { buf, end } = statusReply();
    expect(decodeTargetSpecs(buf, 312, end, 3)[1].params).to.equal('0');
  });

  it('decodeTargetSpecs rejects count past end', function () {
    const { buf, end } = statusReply();
    expect(() => decodeTargetSpecs(buf, 312, end, 4)).to.throw(RangeError);
  });
});

describe('struct dm_name_list codec', function () {
  it('decodes records with event_nr and uuid', function () {
    // Interface 4.46+ with DM_UUID_FLAG: name, then event_nr and flags at
    // the next 8-byte boundary, then the uuid at the boundary after that.
    const buf = Buffer.alloc(312 + 80);
    buf.writeBigUInt64LE(0xfd00n, 312); // 253:0
    buf.writeUInt32LE(40, 312 + 8);
    buf.write('alpha', 312 + 12);
    buf.writeUInt32LE(7, 312 + 24); // event_nr
    buf.writeUInt32LE(1, 312 + 28); // DM_NAME_LIST_FLAG_HAS_UUID
    buf.write('U-1', 312 + 32);
    buf.writeBigUInt64LE(0xfd01n, 352); // 253:1
    buf.writeUInt32LE(0, 352 + 8);
    buf.write('beta-long-name', 352 + 12);
    buf.writeUInt32LE(0, 352 + 32);
    buf.writeUInt32LE(2, 352 + 36); // DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID
    expect(decodeNameList(buf, 312, 392, true)).to.deep.equal([
      { name: 'alpha', dev: 0xfd00n, eventNr: 7, uuid: 'U-1' },
      { name: 'beta-long-name', dev: 0xfd01n, eventNr: 0 },
    ]);
  });

  it('decodes records without event_nr', function () {
    // Interfaces before 4.37 end each record right after the padded name.
    const buf = Buffer.alloc(312 + 48);
    buf.writeBigUInt64LE(0xfd00n, 312);
    buf.writeUInt32LE(24, 312 + 8);
    buf.write('alpha', 312 + 12);
    buf.writeBigUInt64LE(0xfd01n, 336);
    buf.write('beta', 336 + 12);
    expect(decodeNameList(buf, 312, 360, false)).to.deep.equal([
      { name: 'alpha', dev: 0xfd00n },
      { name: 'beta', dev: 0xfd01n },
    ]);
  });

  it('decodes event_nr without uuid flags', function () {
    // Interfaces 4.37 to 4.45 write event_nr and leave the flags word zero.
    const buf = Buffer.alloc(312 + 32);
    buf.writeBigUInt64LE(0xfd02n, 312);
    buf.write('alpha', 312 + 12);
    buf.writeUInt32LE(3, 312 + 24);
    expect(decodeNameList(buf, 312, 344, true)).to.deep.equal([{ name: 'alpha', dev: 0xfd02n, eventNr: 3 }]);
  });

  it('zeroed record means empty list', function () {
    expect(decodeNameList(Buffer.alloc(312 + 16), 312, 328, true)).to.deep.equal([]);
  });

  it('empty data area means empty list', function () {
    expect(decodeNameList(Buffer.alloc(312), 312, 312, true)).to.deep.equal([]);
  });

  it('rejects next past reply end', function () {
    const buf = Buffer.alloc(312 + 24);
    buf.writeBigUInt64LE(0xfd00n, 312);
    buf.writeUInt32LE(1000, 312 + 8);
    buf.write('alpha', 312 + 12);
    expect(() => decodeNameList(buf, 312, 336, false)).to.throw(RangeError);
  });

  it('honours Buffer byteOffset', function () {
    const parent = Buffer.alloc(64 + 24, 0);
    parent.writeBigUInt64LE(0x701n, 40);
    parent.write('in-view', 40 + 12);
    const view = parent.subarray(40);
    expect(decodeNameList(view, 0, 24, false)).to.deep.equal([{ name: 'in-view', dev: 0x701n }]);
  });
});

describe('struct dm_target_versions codec', function () {
  it('decodes chained records', function () {
    const buf = Buffer.alloc(312 + 64);
    buf.writeUInt32LE(24, 312); // next: 16 + "linear\0" padded
    buf.writeUInt32LE(1, 316);
    buf.writeUInt32LE(4, 320);
    buf.writeUInt32LE(0, 324);
    buf.write('linear', 328);
    buf.writeUInt32LE(0, 336);
    buf.writeUInt32LE(1, 340);
    buf.writeUInt32LE(23, 344);
    buf.writeUInt32LE(0, 348);
    buf.write('thin-pool', 352);
    // The kernel's data_size over-counts by 7 bytes a record.
    expect(decodeTargetVersions(buf, 312, 312 + 63)).to.deep.equal([
      { name: 'linear', version: [1, 4, 0] },
      { name: 'thin-pool', version: [1, 23, 0] },
    ]);
  });

  it('empty data area gives no versions', function () {
    expect(decodeTargetVersions(Buffer.alloc(312), 312, 312)).to.deep.equal([]);
  });
});

describe('struct dm_target_deps codec', function () {
  it('decodes count and devices', function () {
    const buf = Buffer.alloc(312 + 24);
    buf.writeUInt32LE(2, 312);
    buf.writeBigUInt64LE(0x700n, 320);
    buf.writeBigUInt64LE(0x701n, 328);
    expect(decodeTargetDeps(buf, 312, 336)).to.deep.equal([0x700n, 0x701n]);
  });

  it('rejects count past reply end', function () {
    const buf = Buffer.alloc(312 + 24);
    buf.writeUInt32LE(3, 312);
    expect(() => decodeTargetDeps(buf, 312, 336)).to.throw(RangeError);
  });
});

describe('struct dm_target_msg codec', function () {
  it('encodeTargetMsg writes sector then text', function () {
    const buf = Buffer.alloc(400, 0xee);
    const end = encodeTargetMsg(buf, 312, 0n, 'create_thin 1');
    expect(end).to.equal(336);
    const expected = '0000000000000000' + Buffer.from('create_thin 1').toString('hex') + '00' + '0000';
    expect(buf.subarray(312, 336).toString('hex')).to.equal(expected);
  });

  it('encodeTargetMsg writes sector little-endian', function () {
    const buf = Buffer.alloc(400);
    encodeTargetMsg(buf, 312, 2048n, 'x');
    expect(buf.subarray(312, 320).toString('hex')).to.equal('0008000000000000');
  });

  it('targetMsgSize pads to 8 bytes', function () {
    expect(targetMsgSize('create_thin 1')).to.equal(24);
    expect(targetMsgSize('1234567')).to.equal(16);
  });

  it('decodeTargetMsg reads hand-built message', function () {
    const buf = Buffer.alloc(32);
    buf.writeBigUInt64LE(8n, 0);
    buf.write('delete 10', 8);
    expect(decodeTargetMsg(buf, 0, 32)).to.deep.equal({ sector: 8n, message: 'delete 10' });
  });
});

describe('device numbers', function () {
  const cases: [number, number, bigint][] = [
    [253, 0, 0xfd00n],
    [7, 1, 0x701n],
    // Minor bits above 8 move to bits 20 and up.
    [259, 65536, 0x10010300n],
    [259, 65537, 0x10010301n],
  ];

  for (const [major, minor, dev] of cases) {
    it(`encodeDev packs ${major}:${minor}`, function () {
      expect(encodeDev({ major, minor })).to.equal(dev);
    });

    it(`decodeDev unpacks ${major}:${minor}`, function () {
      expect(decodeDev(dev)).to.deep.equal({ major, minor });
    });
  }

  // glibc's makedev() moves major bits above 12 to bits 44 and up. Linux
  // majors stay below 4096, but decodeDev promises glibc's layout.
  it('encodeDev packs major above 4095', function () {
    expect(encodeDev({ major: 4096, minor: 1 })).to.equal(0x100000000001n);
  });

  it('decodeDev unpacks major above 4095', function () {
    expect(decodeDev(0x100000000001n)).to.deep.equal({ major: 4096, minor: 1 });
  });

  it('formatDev prints major:minor', function () {
    expect(formatDev({ major: 253, minor: 3 })).to.equal('253:3');
  });
});

describe('C string helpers', function () {
  it('align8 rounds up', function () {
    expect([0, 1, 7, 8, 9, 305].map(align8)).to.deep.equal([0, 8, 8, 8, 16, 312]);
  });

  it('writeCString zeroes rest of field', function () {
    const buf = Buffer.alloc(8, 0xff);
    writeCString(buf, 0, 8, 'ab');
    expect(buf.toString('hex')).to.equal('6162000000000000');
  });

  it('writeCString rejects text filling field', function () {
    expect(() => writeCString(Buffer.alloc(8), 0, 4, 'abcd')).to.throw(RangeError);
  });

  it('readCString stops at limit', function () {
    expect(readCString(Buffer.from('abcdef'), 1, 4)).to.equal('bcd');
  });
});
