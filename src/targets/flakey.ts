// The `flakey` target (drivers/md/dm-flakey.c, Linux 6.1, target 1.5;
// Documentation/admin-guide/device-mapper/dm-flakey.rst):
//   table:  <device> <offset> <up interval> <down interval> [<#features> <feature>...]
//   features: drop_writes | error_writes, corrupt_bio_byte <Nth byte> <r|w> <value> <flags>
//   status: empty.
// flakey_ctr() rejects drop_writes or error_writes together with
// corrupt_bio_byte on writes.

import { ArgReader, checkDevice, checkRange, invalidParams, UINT_MAX } from './args.js';
import { type EmptyStatus, parseEmptyStatus } from './linear.js';
import type { Sectors, TargetType } from './table.js';

/** Largest value of corrupt_bio_byte's <value> (a byte). */
const BYTE_MAX = 255n;
/** Words corrupt_bio_byte takes, counted in <#features> together with its name. */
const CORRUPT_BIO_BYTE_WORDS = 5;

export interface FlakeyCorruption {
  /** 1-based offset of the byte to overwrite in each matching bio. */
  nthByte: number;
  /** Corrupt reads (r) or writes (w). */
  direction: 'r' | 'w';
  /** Byte written. */
  value: number;
  /** Only bios whose flags contain all of these bits are corrupted (0 for all). */
  flags: number;
}

export interface FlakeyParams {
  device: string;
  offset: Sectors;
  /** Seconds the device behaves normally. */
  upInterval: number;
  /** Seconds the device misbehaves. */
  downInterval: number;
  /** Treatment of writes while the device is down; without it, all I/O fails. */
  writes?: 'drop_writes' | 'error_writes';
  corruptBioByte?: FlakeyCorruption;
}

export const flakeyType: TargetType<FlakeyParams, EmptyStatus> = {
  name: 'flakey',
  module: 'dm_flakey',
  formatParams(params) {
    checkRange('flakey', 'up interval', params.upInterval, 0n, UINT_MAX);
    checkRange('flakey', 'down interval', params.downInterval, 0n, UINT_MAX);
    if (params.upInterval === 0 && params.downInterval === 0) invalidParams('flakey', 'up and down intervals cannot both be 0');
    const features: string[] = [];
    if (params.writes !== undefined) {
      if (params.writes !== 'drop_writes' && params.writes !== 'error_writes') invalidParams('flakey', `writes must be drop_writes or error_writes, found ${JSON.stringify(params.writes)}`);
      features.push(params.writes);
    }
    const corruption = params.corruptBioByte;
    if (corruption !== undefined) {
      checkRange('flakey', 'corrupt_bio_byte offset', corruption.nthByte, 1n, UINT_MAX);
      checkRange('flakey', 'corrupt_bio_byte value', corruption.value, 0n, BYTE_MAX);
      checkRange('flakey', 'corrupt_bio_byte flags', corruption.flags, 0n, UINT_MAX);
      if (corruption.direction !== 'r' && corruption.direction !== 'w') invalidParams('flakey', `corrupt_bio_byte direction must be r or w, found ${JSON.stringify(corruption.direction)}`);
      features.push('corrupt_bio_byte', String(corruption.nthByte), corruption.direction, String(corruption.value), String(corruption.flags));
    }
    if (params.writes !== undefined && corruption?.direction === 'w') {
      invalidParams('flakey', `${params.writes} cannot be combined with corrupt_bio_byte on writes`);
    }
    return [checkDevice('flakey', 'device', params.device), params.offset, params.upInterval, params.downInterval, features.length, ...features].join(' ');
  },
  parseParams(params) {
    const args = new ArgReader('flakey', 'table', params);
    const result: FlakeyParams = {
      device: args.device('device'),
      offset: args.sectors('offset'),
      upInterval: args.small('up interval'),
      downInterval: args.small('down interval'),
    };
    if (result.upInterval === 0 && result.downInterval === 0) args.fail('up and down intervals cannot both be 0');
    const features = args.remaining > 0 ? args.counted('feature') : [];
    args.end();
    const words = new ArgReader('flakey', 'table', features.join(' '));
    while (words.remaining > 0) {
      const name = words.oneOf('feature', ['drop_writes', 'error_writes', 'corrupt_bio_byte']);
      if (name === 'corrupt_bio_byte') {
        if (result.corruptBioByte) args.fail('corrupt_bio_byte given twice');
        if (words.remaining < CORRUPT_BIO_BYTE_WORDS - 1) args.fail('corrupt_bio_byte takes 4 arguments');
        const nthByte = words.small('corrupt_bio_byte offset');
        if (nthByte === 0) args.fail('corrupt_bio_byte offset must be at least 1');
        result.corruptBioByte = {
          nthByte,
          direction: words.oneOf('corrupt_bio_byte direction', ['r', 'w']),
          value: words.small('corrupt_bio_byte value', BYTE_MAX),
          flags: words.small('corrupt_bio_byte flags'),
        };
      } else {
        if (result.writes !== undefined) args.fail('drop_writes and error_writes exclude each other and may appear once');
        result.writes = name;
      }
    }
    if (result.writes !== undefined && result.corruptBioByte?.direction === 'w') {
      args.fail(`${result.writes} cannot be combined with corrupt_bio_byte on writes`);
    }
    return result;
  },
  parseStatus: (line) => parseEmptyStatus('flakey', line),
};
