// The `striped` target (drivers/md/dm-stripe.c):
//   table:  <#stripes> <chunk size> <device> <offset> [<device> <offset>]...
//   status: <#stripes> <device>... 1 <one character per stripe>
//           where the characters are A (alive) or D (an I/O error was seen).

import { ArgReader, checkDevice, checkRange, invalidParams, UINT_MAX } from './args.js';
import type { Sectors, TargetType } from './table.js';

export interface Stripe {
  device: string;
  offset: Sectors;
}

export interface StripedParams {
  /** Sectors written to one stripe before moving to the next. */
  chunkSize: Sectors;
  stripes: Stripe[];
}

export type StripeHealth = 'A' | 'D';

export interface StripedStatus {
  devices: string[];
  /** A for a stripe without errors, D for one that returned an I/O error. */
  health: StripeHealth[];
}

const HEALTH_PATTERN = /^[AD]+$/;
/** The word stripe_status() prints between the devices and the health letters (as read on Linux 6.1). */
const HEALTH_GROUP_COUNT = '1';

export const stripedType: TargetType<StripedParams, StripedStatus> = {
  name: 'striped',
  module: 'dm_mod',
  formatParams(params) {
    if (params.stripes.length === 0) invalidParams('striped', 'at least one stripe is needed');
    // stripe_ctr reads the chunk size with kstrtouint and rejects 0.
    checkRange('striped', 'chunk size', params.chunkSize, 1n, UINT_MAX);
    const words = [String(params.stripes.length), String(params.chunkSize)];
    for (const stripe of params.stripes) words.push(checkDevice('striped', 'stripe device', stripe.device), String(stripe.offset));
    return words.join(' ');
  },
  parseParams(params) {
    const args = new ArgReader('striped', 'table', params);
    const count = args.small('stripe count');
    if (count === 0) args.fail('stripe count must be at least 1');
    const chunkSize = args.integer('chunk size', UINT_MAX) as Sectors;
    if (chunkSize === 0n) args.fail('chunk size must be positive');
    const stripes: Stripe[] = [];
    for (let i = 0; i < count; i++) stripes.push({ device: args.device(`stripe ${i} device`), offset: args.sectors(`stripe ${i} offset`) });
    args.end();
    return { chunkSize, stripes };
  },
  parseStatus(line) {
    const args = new ArgReader('striped', 'status', line);
    const count = args.small('stripe count');
    if (count === 0) args.fail('stripe count must be at least 1');
    const devices: string[] = [];
    for (let i = 0; i < count; i++) devices.push(args.device(`stripe ${i} device`));
    args.literal(HEALTH_GROUP_COUNT);
    const health = args.word('stripe health');
    if (!HEALTH_PATTERN.test(health) || health.length !== count) {
      args.fail(`stripe health must be ${count} letters A or D, found ${JSON.stringify(health)}`);
    }
    args.end();
    return { devices, health: [...health] as StripeHealth[] };
  },
};
