// dmctl's parsing and formatting without a kernel. Expected texts are what
// Debian's dmsetup 1.02.185 and util-linux 2.38's losetup printed for the
// same input.

import { expect } from 'chai';

import { ArgumentError, parseArgs } from '../../src/cli/args.js';
import { hideCryptKey, formatInfo, parseDeviceNaming } from '../../src/cli/dm-read.js';
import { parseTableText } from '../../src/cli/dm-write.js';
import { ioctlFailureLine } from '../../src/cli/errors.js';
import { formatLoopList } from '../../src/cli/loop.js';
import {
  DEFAULT_INFO_FIELDS,
  DEFAULT_SPLITNAME_FIELDS,
  formatReport,
  reportLayout,
  selectFields,
  splitName,
  UnknownFieldError,
  type ReportRow,
} from '../../src/cli/report.js';
import { formatTree, parseTreeOptions, TreeOptionError, type TreeDevice } from '../../src/cli/tree.js';
import type { DeviceInfo } from '../../src/index.js';

function device(name: string, minor: number, uuid = '', extra: Partial<DeviceInfo> = {}): DeviceInfo {
  return {
    exists: true,
    name,
    uuid,
    major: 254,
    minor,
    openCount: 0,
    eventNr: 0,
    targetCount: 1,
    suspended: false,
    readOnly: false,
    liveTable: true,
    inactiveTable: false,
    deferredRemove: false,
    ...extra,
  };
}

function row(info: DeviceInfo): ReportRow {
  return { info, readAhead: 256, split: splitName(info.uuid, info.name, '-') };
}

describe('dmctl command line', function () {
  it('options after the command', function () {
    const parsed = parseArgs(['create', 'x', '--table', '0 8 zero', '-u', 'U']);
    expect(parsed.positionals).to.deep.equal(['create', 'x']);
    expect(parsed.values.get('table')).to.equal('0 8 zero');
    expect(parsed.values.get('uuid')).to.equal('U');
  });

  it('short options cluster and attach values', function () {
    const parsed = parseArgs(['-cv', '-odevname', 'info']);
    expect(parsed.switches.get('columns')).to.equal(1);
    expect(parsed.switches.get('verbose')).to.equal(1);
    expect(parsed.values.get('options')).to.equal('devname');
  });

  it('long option prefixes and equals', function () {
    const parsed = parseArgs(['--notab', '--separator=,', 'create', 'x']);
    expect(parsed.switches.get('notable')).to.equal(1);
    expect(parsed.values.get('separator')).to.equal(',');
  });

  it('double dash ends options', function () {
    expect(parseArgs(['rename', '--', 'a', '-b']).positionals).to.deep.equal(['rename', 'a', '-b']);
  });

  it('getopt messages for bad options', function () {
    expect(() => parseArgs(['--bogus'])).to.throw(ArgumentError, "dmctl: unrecognized option '--bogus'");
    expect(() => parseArgs(['-x'])).to.throw(ArgumentError, "dmctl: invalid option -- 'x'");
    expect(() => parseArgs(['-o'])).to.throw(ArgumentError, "dmctl: option requires an argument -- 'o'");
    expect(() => parseArgs(['--table'])).to.throw(ArgumentError, "dmctl: option '--table' requires an argument");
  });

  it('ambiguous long option prefix', function () {
    expect(() => parseArgs(['--ta'])).to.throw(ArgumentError, "option '--ta' is ambiguous");
  });

  it('deps -o naming words', function () {
    expect(parseDeviceNaming('devname')).to.equal('devname');
    expect(parseDeviceNaming('blk')).to.equal('blkdevname');
    expect(() => parseDeviceNaming('bad')).to.throw('Option not recognised: bad.');
  });
});

describe('dmctl output formats', function () {
  it('info block for a device', function () {
    const text = formatInfo(device('t2', 0, 'UUID-T2'), 'Read Ahead:        256\n');
    expect(text).to.equal(
      'Name:              t2\nState:             ACTIVE\nRead Ahead:        256\nTables present:    LIVE\n' +
        'Open count:        0\nEvent number:      0\nMajor, minor:      254, 0\nNumber of targets: 1\nUUID: UUID-T2\n\n',
    );
  });

  it('info block without table', function () {
    const text = formatInfo(device('x1', 0, '', { liveTable: false, targetCount: 0 }), '');
    expect(text).to.contain('Tables present:    None\n');
    expect(text).not.to.contain('Read Ahead');
  });

  it('info block with both tables', function () {
    const text = formatInfo(device('x', 0, '', { inactiveTable: true, suspended: true, readOnly: true }), '');
    expect(text).to.contain('State:             SUSPENDED (READ-ONLY)\n');
    expect(text).to.contain('Tables present:    LIVE & INACTIVE\n');
  });

  it('info -c default columns', function () {
    const text = formatReport(selectFields(undefined, DEFAULT_INFO_FIELDS), [row(device('t2', 0, 'UUID-T2'))], reportLayout({}));
    expect(text).to.equal(
      'Name             Maj Min Stat Open Targ Event  UUID                            \n' +
        't2               254   0 L--w    0    1      0 UUID-T2                         \n',
    );
  });

  it('info -c with noheadings', function () {
    const rows = [row(device('base', 0, 'UUID-BASE', { openCount: 1 })), row(device('sp ace', 2))];
    const text = formatReport(selectFields(undefined, DEFAULT_INFO_FIELDS), rows, reportLayout({ noHeadings: true }));
    expect(text).to.equal('base:254:0:L--w:1:1:0:UUID-BASE\nsp ace:254:2:L--w:0:1:0:\n');
  });

  it('info -c with a separator', function () {
    const text = formatReport(selectFields(undefined, DEFAULT_INFO_FIELDS), [row(device('other', 3, 'UUID-O'))], reportLayout({ separator: ',' }));
    expect(text).to.equal('Name,Maj,Min,Stat,Open,Targ,Event,UUID\nother,254,3,L--w,0,1,0,UUID-O\n');
  });

  it('info -c appended split fields', function () {
    const fields = selectFields('+subsystem,vg_name', DEFAULT_INFO_FIELDS);
    const text = formatReport(fields, [row(device('base', 0, 'UUID-BASE', { openCount: 1 }))], reportLayout({}));
    expect(text).to.equal(
      'Name             Maj Min Stat Open Targ Event  UUID                             Subsys VG  \n' +
        'base             254   0 L--w    1    1      0 UUID-BASE                        UUID       \n',
    );
  });

  it('unknown report field', function () {
    expect(() => selectFields('name,bad', DEFAULT_INFO_FIELDS)).to.throw(UnknownFieldError, 'Unrecognised field: bad');
  });

  it('empty report prints nothing', function () {
    expect(formatReport(selectFields(undefined, DEFAULT_INFO_FIELDS), [], reportLayout({}))).to.equal('');
  });

  it('splitname of LVM names', function () {
    const fields = selectFields(undefined, DEFAULT_SPLITNAME_FIELDS);
    const show = (name: string, subsystem = 'LVM'): string => formatReport(fields, [{ split: splitName(subsystem, name) }], reportLayout({}));
    expect(show('vg-lv')).to.equal('VG   LV   LVLayer\nvg   lv          \n');
    expect(show('a--b-c')).to.equal('VG   LV   LVLayer\na-b  c           \n');
    expect(show('vg-lv_tdata-x')).to.equal('VG   LV       LVLayer\nvg   lv_tdata x      \n');
    expect(show('a-b', 'XYZ')).to.equal('VG   LV   LVLayer\n                 \n');
  });

  it('splitname with name prefixes', function () {
    const fields = selectFields(undefined, DEFAULT_SPLITNAME_FIELDS);
    const text = formatReport(fields, [{ split: splitName('LVM', 'a-b') }], reportLayout({ namePrefixes: true }));
    expect(text).to.equal("VG LV LVLayer\nDM_VG_NAME='a' DM_LV_NAME='b' DM_LV_LAYER=''\n");
  });

  it('crypt key hidden as zeros', function () {
    expect(hideCryptKey('aes-cbc-plain 0123456789abcdef0123456789abcdef 0 7:0 0')).to.equal('aes-cbc-plain 00000000000000000000000000000000 0 7:0 0');
  });

  it('ioctl failure lines', function () {
    expect(ioctlFailureLine('table', { name: 'nope' }, 'ENXIO', '')).to.equal('device-mapper: table ioctl on nope  failed: No such device or address');
    expect(ioctlFailureLine('remove', { name: '', uuid: 'NOPE' }, 'ENXIO', '')).to.equal('device-mapper: remove ioctl on  NOPE failed: No such device or address');
    expect(ioctlFailureLine('reload', { name: 't1', major: 254, minor: 0 }, 'EINVAL', '')).to.equal(
      'device-mapper: reload ioctl on t1 (254:0) failed: Invalid argument',
    );
  });

  it('table text with comments', function () {
    const targets = parseTableText('# comment\n\n0 1024 zero\n1024 1024 error\n', '');
    expect(targets.map((target) => target.type)).to.deep.equal(['zero', 'error']);
    expect(targets[1].start).to.equal(1024n);
  });

  it('table text with a bad line', function () {
    expect(() => parseTableText('zero zero zero', '')).to.throw('Invalid format on line 1 of table .');
  });

  it('losetup -l columns', function () {
    const text = formatLoopList([
      {
        name: '/dev/loop0',
        sizeLimit: '0',
        offset: '0',
        autoclear: '1',
        readOnly: '0',
        backingFile: '/tmp/a.img',
        directIo: '0',
        logicalSectorSize: '512',
      },
    ]);
    expect(text).to.equal(
      'NAME       SIZELIMIT OFFSET AUTOCLEAR RO BACK-FILE  DIO LOG-SEC\n' + '/dev/loop0         0      0         1  0 /tmp/a.img   0     512\n',
    );
  });
});

describe('dmctl ls --tree', function () {
  const base: TreeDevice = { name: 'base', uuid: 'UUID-BASE', dev: { major: 254, minor: 0 }, suspended: false, readOnly: false, openCount: 1, deps: [{ major: 7, minor: 0 }] };
  const other: TreeDevice = { name: 'other', uuid: 'UUID-O', dev: { major: 254, minor: 3 }, suspended: false, readOnly: false, openCount: 0, deps: [] };
  const top: TreeDevice = { name: 'top', uuid: '', dev: { major: 254, minor: 1 }, suspended: false, readOnly: false, openCount: 0, deps: [{ major: 254, minor: 0 }] };
  const devices = [base, other, top];
  const options = (text?: string) => parseTreeOptions(text, { utf8: false, width: 80, blockName: (dev) => (dev.major === 7 ? `loop${dev.minor}` : `dm-${dev.minor}`) });

  it('default tree', function () {
    expect(formatTree(devices, options()).toString()).to.equal('other (254:3)\ntop (254:1)\n `-base (254:0)\n    `- (7:0)\n');
  });

  it('tree with attributes', function () {
    expect(formatTree(devices, options('ascii,uuid,open,rw,active')).toString()).to.equal(
      'other (254:3) [ACTIVE, RW, 0, UUID-O]\ntop (254:1) [ACTIVE, RW, 0, ]\n `-base (254:0) [ACTIVE, RW, 1, UUID-BASE]\n    `- (7:0)\n',
    );
  });

  it('inverted tree', function () {
    expect(formatTree(devices, options('inverted')).toString()).to.equal(' (7:0)\n `-base (254:0)\n    `-top (254:1)\nother (254:3)\n');
  });

  it('compact tree', function () {
    expect(formatTree(devices, options('compact')).toString()).to.equal('other (254:3)\ntop (254:1)---base (254:0)--- (7:0)\n');
  });

  it('tree with kernel names', function () {
    expect(formatTree(devices, options('blkdevname')).toString()).to.equal('other <dm-3> (254:3)\ntop <dm-1> (254:1)\n `-base <dm-0> (254:0)\n    `- <loop0> (7:0)\n');
  });

  it('shared leaf under each user', function () {
    const pool: TreeDevice = { ...other, name: 'pool', dev: { major: 254, minor: 5 }, deps: [{ major: 7, minor: 0 }, { major: 7, minor: 1 }] };
    const thin: TreeDevice = { ...other, name: 'thin', dev: { major: 254, minor: 6 }, deps: [{ major: 254, minor: 5 }] };
    const cr: TreeDevice = { ...other, name: 'cr', dev: { major: 254, minor: 4 }, deps: [{ major: 7, minor: 0 }] };
    expect(formatTree([cr, pool, thin], options()).toString()).to.equal(
      'cr (254:4)\n `- (7:0)\nthin (254:6)\n `-pool (254:5)\n    |- (7:0)\n    `- (7:1)\n',
    );
  });

  it('unknown tree option', function () {
    expect(() => options('bad')).to.throw(TreeOptionError, 'Tree options not recognised: bad.');
  });
});
