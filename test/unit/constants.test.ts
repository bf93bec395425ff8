// The kernel ABI constants against values written out by hand from
// include/uapi/linux/dm-ioctl.h, include/uapi/linux/loop.h and libdm's
// per-command version table (_cmd_data_v4 in lvm2 libdm-iface.c).

import { expect } from 'chai';

import {
  commandName,
  DM_COMMAND_MIN_VERSION,
  DM_IOCTL_SIZE,
  DM_NAME_LEN,
  DM_TARGET_SPEC_SIZE,
  DM_UUID_LEN,
  DmCommand,
  DmFlag,
  DmIoctlOffset,
  dmRequest,
  flagNames,
  iowr,
  type DmCommandName,
} from '../../src/ioctl/constants.js';
import {
  LOOP_CLR_FD,
  LOOP_CONFIG_SIZE,
  LOOP_CONFIGURE,
  LOOP_CTL_GET_FREE,
  LOOP_INFO64_SIZE,
  LOOP_SET_FD,
  LOOP_SET_STATUS64,
  LoopConfigOffset,
  LoopInfo64Offset,
} from '../../src/ioctl/loop.js';

describe('device-mapper constants', function () {
  const requests: [DmCommandName, number][] = [
    ['DM_VERSION', 0xc138fd00],
    ['DM_LIST_DEVICES', 0xc138fd02],
    ['DM_DEV_CREATE', 0xc138fd03],
    ['DM_TABLE_LOAD', 0xc138fd09],
    ['DM_TARGET_MSG', 0xc138fd0e],
    ['DM_GET_TARGET_VERSION', 0xc138fd11],
  ];
  for (const [command, number] of requests) {
    it(`dmRequest encodes ${command}`, function () {
      expect(dmRequest(command)).to.equal(number);
    });
  }

  it('iowr returns unsigned number', function () {
    expect(iowr(0xfd, 0, 312)).to.be.greaterThan(0);
  });

  it('command numbers match the header', function () {
    expect(DmCommand).to.deep.equal({
      DM_VERSION: 0,
      DM_REMOVE_ALL: 1,
      DM_LIST_DEVICES: 2,
      DM_DEV_CREATE: 3,
      DM_DEV_REMOVE: 4,
      DM_DEV_RENAME: 5,
      DM_DEV_SUSPEND: 6,
      DM_DEV_STATUS: 7,
      DM_DEV_WAIT: 8,
      DM_TABLE_LOAD: 9,
      DM_TABLE_CLEAR: 10,
      DM_TABLE_DEPS: 11,
      DM_TABLE_STATUS: 12,
      DM_LIST_VERSIONS: 13,
      DM_TARGET_MSG: 14,
      DM_DEV_SET_GEOMETRY: 15,
      DM_DEV_ARM_POLL: 16,
      DM_GET_TARGET_VERSION: 17,
    });
  });

  it('commandName maps number to name', function () {
    expect(commandName(5)).to.equal('DM_DEV_RENAME');
  });

  it('commandName returns undefined past table', function () {
    expect(commandName(18)).to.equal(undefined);
  });

  it('minimum versions match libdm table', function () {
    // libdm sends 4.0.0 for the classic commands and the version that
    // introduced each later one. Older kernels reject a newer minor.
    expect(DM_COMMAND_MIN_VERSION).to.deep.equal({
      DM_VERSION: [4, 0, 0],
      DM_REMOVE_ALL: [4, 0, 0],
      DM_LIST_DEVICES: [4, 0, 0],
      DM_DEV_CREATE: [4, 0, 0],
      DM_DEV_REMOVE: [4, 0, 0],
      DM_DEV_RENAME: [4, 0, 0],
      DM_DEV_SUSPEND: [4, 0, 0],
      DM_DEV_STATUS: [4, 0, 0],
      DM_DEV_WAIT: [4, 0, 0],
      DM_TABLE_LOAD: [4, 0, 0],
      DM_TABLE_CLEAR: [4, 0, 0],
      DM_TABLE_DEPS: [4, 0, 0],
      DM_TABLE_STATUS: [4, 0, 0],
      DM_LIST_VERSIONS: [4, 1, 0],
      DM_TARGET_MSG: [4, 2, 0],
      DM_DEV_SET_GEOMETRY: [4, 6, 0],
      DM_DEV_ARM_POLL: [4, 36, 0],
      DM_GET_TARGET_VERSION: [4, 41, 0],
    });
  });

  it('flag bits match the header', function () {
    expect(DmFlag).to.deep.equal({
      DM_READONLY_FLAG: 1,
      DM_SUSPEND_FLAG: 2,
      DM_EXISTS_FLAG: 4,
      DM_PERSISTENT_DEV_FLAG: 8,
      DM_STATUS_TABLE_FLAG: 0x10,
      DM_ACTIVE_PRESENT_FLAG: 0x20,
      DM_INACTIVE_PRESENT_FLAG: 0x40,
      DM_BUFFER_FULL_FLAG: 0x100,
      DM_SKIP_BDGET_FLAG: 0x200,
      DM_SKIP_LOCKFS_FLAG: 0x400,
      DM_NOFLUSH_FLAG: 0x800,
      DM_QUERY_INACTIVE_TABLE_FLAG: 0x1000,
      DM_UEVENT_GENERATED_FLAG: 0x2000,
      DM_UUID_FLAG: 0x4000,
      DM_SECURE_DATA_FLAG: 0x8000,
      DM_DATA_OUT_FLAG: 0x10000,
      DM_DEFERRED_REMOVE: 0x20000,
      DM_INTERNAL_SUSPEND_FLAG: 0x40000,
      DM_IMA_MEASUREMENT_FLAG: 0x80000,
    });
  });

  it('flagNames lists set bits', function () {
    expect(flagNames(0x20001)).to.deep.equal(['DM_READONLY_FLAG', 'DM_DEFERRED_REMOVE']);
  });

  it('header offsets match struct dm_ioctl', function () {
    expect(DmIoctlOffset).to.deep.equal({
      version: 0,
      data_size: 12,
      data_start: 16,
      target_count: 20,
      open_count: 24,
      flags: 28,
      event_nr: 32,
      padding: 36,
      dev: 40,
      name: 48,
      uuid: 176,
      data: 305,
    });
  });

  it('struct sizes match the header', function () {
    expect(DM_IOCTL_SIZE).to.equal(312);
    expect(DM_TARGET_SPEC_SIZE).to.equal(40);
    expect(DM_NAME_LEN).to.equal(128);
    expect(DM_UUID_LEN).to.equal(129);
  });
});

describe('loop constants', function () {
  it('request numbers match loop.h', function () {
    expect(LOOP_SET_FD).to.equal(0x4c00);
    expect(LOOP_CLR_FD).to.equal(0x4c01);
    expect(LOOP_SET_STATUS64).to.equal(0x4c04);
    expect(LOOP_CONFIGURE).to.equal(0x4c0a);
    expect(LOOP_CTL_GET_FREE).to.equal(0x4c82);
  });

  it('struct sizes match loop.h', function () {
    expect(LOOP_INFO64_SIZE).to.equal(232);
    expect(LOOP_CONFIG_SIZE).to.equal(304);
  });

  it('loop_info64 offsets match loop.h', function () {
    expect(LoopInfo64Offset.lo_offset).to.equal(24);
    expect(LoopInfo64Offset.lo_sizelimit).to.equal(32);
    expect(LoopInfo64Offset.lo_flags).to.equal(52);
    expect(LoopInfo64Offset.lo_file_name).to.equal(56);
    expect(LoopInfo64Offset.lo_crypt_name).to.equal(120);
  });

  it('loop_config places info at 8', function () {
    expect(LoopConfigOffset.info).to.equal(8);
  });
});
