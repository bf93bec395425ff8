// The `delay` target (drivers/md/dm-delay.c, Linux 6.1, target 1.2;
// Documentation/admin-guide/device-mapper/delay.rst):
//   table:  <device> <offset> <delay ms> [<write device> <write offset> <write delay ms>
//           [<flush device> <flush offset> <flush delay ms>]]
//   status: <reads delayed> <writes delayed> <flushes delayed> (bios in flight).
// With 3 arguments all I/O uses the first class; with 6, flushes use the
// write class.

import { ArgReader, checkDevice, checkRange, invalidParams, UINT_MAX } from './args.js';
import type { Sectors, TargetType } from './table.js';

export interface DelayClass {
  device: string;
  offset: Sectors;
  /** Delay in milliseconds. */
  delayMs: number;
}

export interface DelayParams {
  read: DelayClass;
  write?: DelayClass;
  /** Only with `write`. */
  flush?: DelayClass;
}

export interface DelayStatus {
  reads: number;
  writes: number;
  flushes: number;
}

function formatClass(what: string, delayClass: DelayClass): string {
  checkRange('delay', `${what} delay`, delayClass.delayMs, 0n, UINT_MAX);
  return `${checkDevice('delay', `${what} device`, delayClass.device)} ${delayClass.offset} ${delayClass.delayMs}`;
}

function readClass(args: ArgReader, what: string): DelayClass {
  return { device: args.device(`${what} device`), offset: args.sectors(`${what} offset`), delayMs: args.small(`${what} delay`) };
}

export const delayType: TargetType<DelayParams, DelayStatus> = {
  name: 'delay',
  module: 'dm_delay',
  formatParams(params) {
    if (params.flush !== undefined && params.write === undefined) invalidParams('delay', 'a flush class needs a write class before it');
    const words = [formatClass('read', params.read)];
    if (params.write !== undefined) words.push(formatClass('write', params.write));
    if (params.flush !== undefined) words.push(formatClass('flush', params.flush));
    return words.join(' ');
  },
  parseParams(params) {
    const args = new ArgReader('delay', 'table', params);
    const result: DelayParams = { read: readClass(args, 'read') };
    if (args.remaining > 0) result.write = readClass(args, 'write');
    if (args.remaining > 0) result.flush = readClass(args, 'flush');
    args.end();
    return result;
  },
  parseStatus(line) {
    const args = new ArgReader('delay', 'status', line);
    const status = { reads: args.small('reads'), writes: args.small('writes'), flushes: args.small('flushes') };
    args.end();
    return status;
  },
};
