// The snapshot targets (drivers/md/dm-snap.c, dm-snap-persistent.c,
// dm-snap-transient.c, Linux 6.1; Documentation/admin-guide/device-mapper/snapshot.rst):
//   snapshot, snapshot-merge table:
//           <origin> <COW device> P|PO|N <chunk size> [<#features> discard_zeroes_cow [discard_passdown_origin]]
//   status: <allocated sectors>/<COW sectors> <metadata sectors>, or one of
//           `Invalid` (the COW device filled or failed), `Merge failed`,
//           `Overflow` (a PO snapshot ran out of space), `Unknown` (the
//           exception store reports no usage).
//   snapshot-origin table: <origin>; no status.

import { ArgReader, checkDevice, checkRange, invalidParams, UINT_MAX } from './args.js';
import { type EmptyStatus, parseEmptyStatus } from './linear.js';
import type { Sectors, TargetType } from './table.js';

/**
 * The exception store: P persistent, PO persistent with overflow reported
 * instead of invalidating the snapshot (userspace_supports_overflow), N
 * transient (lost on deactivation).
 */
export type SnapshotStore = 'P' | 'PO' | 'N';
const SNAPSHOT_STORES: readonly SnapshotStore[] = ['P', 'PO', 'N'];

/** Feature arguments in the order snapshot_status() prints them. */
export const SNAPSHOT_FEATURES = ['discard_zeroes_cow', 'discard_passdown_origin'] as const;
export type SnapshotFeature = (typeof SNAPSHOT_FEATURES)[number];

export interface SnapshotParams {
  origin: string;
  cowDevice: string;
  store: SnapshotStore;
  /** Chunk size in sectors: a power of two (dm-exception-store.c checks it). */
  chunkSize: Sectors;
  /** discard_passdown_origin requires discard_zeroes_cow. */
  features: SnapshotFeature[];
}

export type SnapshotStatus =
  | { state: 'Invalid' }
  | { state: 'Merge failed' }
  | { state: 'Overflow' }
  | { state: 'Unknown' }
  | { state: 'ok'; allocatedSectors: Sectors; totalSectors: Sectors; metadataSectors: Sectors };

const SNAPSHOT_WORD_STATES = ['Invalid', 'Overflow', 'Unknown'] as const;

function isPowerOfTwo(value: bigint): boolean {
  return value > 0n && (value & (value - 1n)) === 0n;
}

function makeSnapshotType(name: 'snapshot' | 'snapshot-merge'): TargetType<SnapshotParams, SnapshotStatus> {
  return {
    name,
    module: 'dm_snapshot',
    formatParams(params) {
      checkRange(name, 'chunk size', params.chunkSize, 1n, UINT_MAX);
      if (!isPowerOfTwo(params.chunkSize)) invalidParams(name, `chunk size ${params.chunkSize} sectors is not a power of two`);
      if (!SNAPSHOT_STORES.includes(params.store)) invalidParams(name, `store must be P, PO or N, found ${JSON.stringify(params.store)}`);
      const features = canonicalSnapshotFeatures(name, params.features);
      const words = [
        checkDevice(name, 'origin', params.origin),
        checkDevice(name, 'COW device', params.cowDevice),
        params.store,
        String(params.chunkSize),
      ];
      if (features.length > 0) words.push(String(features.length), ...features);
      return words.join(' ');
    },
    parseParams(params) {
      const args = new ArgReader(name, 'table', params);
      const origin = args.device('origin');
      const cowDevice = args.device('COW device');
      const store = args.oneOf('store', SNAPSHOT_STORES);
      const chunkSize = args.integer('chunk size', UINT_MAX) as Sectors;
      if (!isPowerOfTwo(chunkSize)) args.fail(`chunk size ${chunkSize} is not a power of two`);
      const words = args.remaining > 0 ? args.counted('feature') : [];
      args.end();
      for (const word of words) {
        if (!(SNAPSHOT_FEATURES as readonly string[]).includes(word)) args.fail(`unknown feature ${JSON.stringify(word)}`);
      }
      if (words.includes('discard_passdown_origin') && !words.includes('discard_zeroes_cow')) {
        args.fail('discard_passdown_origin requires discard_zeroes_cow');
      }
      return { origin, cowDevice, store, chunkSize, features: SNAPSHOT_FEATURES.filter((f) => words.includes(f)) };
    },
    parseStatus(line) {
      const args = new ArgReader(name, 'status', line);
      if (args.words.length === 2 && args.words[0] === 'Merge' && args.words[1] === 'failed') return { state: 'Merge failed' };
      if (args.words.length === 1 && (SNAPSHOT_WORD_STATES as readonly string[]).includes(args.words[0])) {
        return { state: args.words[0] as (typeof SNAPSHOT_WORD_STATES)[number] };
      }
      const usage = args.fraction('COW usage');
      const metadataSectors = args.sectors('metadata sectors');
      args.end();
      return { state: 'ok', allocatedSectors: usage.used as Sectors, totalSectors: usage.total as Sectors, metadataSectors };
    },
  };
}

function canonicalSnapshotFeatures(name: string, features: readonly string[]): SnapshotFeature[] {
  for (const feature of features) {
    if (!(SNAPSHOT_FEATURES as readonly string[]).includes(feature)) invalidParams(name, `unknown feature ${JSON.stringify(feature)}`);
  }
  if (features.includes('discard_passdown_origin') && !features.includes('discard_zeroes_cow')) {
    invalidParams(name, 'discard_passdown_origin requires discard_zeroes_cow');
  }
  return SNAPSHOT_FEATURES.filter((feature) => features.includes(feature));
}

export const snapshotType = makeSnapshotType('snapshot');
/** A snapshot whose exceptions are being merged back into the origin; same table and status as snapshot. */
export const snapshotMergeType = makeSnapshotType('snapshot-merge');

export interface SnapshotOriginParams {
  origin: string;
}

export const snapshotOriginType: TargetType<SnapshotOriginParams, EmptyStatus> = {
  name: 'snapshot-origin',
  module: 'dm_snapshot',
  formatParams: (params) => checkDevice('snapshot-origin', 'origin', params.origin),
  parseParams(params) {
    const args = new ArgReader('snapshot-origin', 'table', params);
    const origin = args.device('origin');
    args.end();
    return { origin };
  },
  parseStatus: (line) => parseEmptyStatus('snapshot-origin', line),
};
