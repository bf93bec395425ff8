// The `mirror` target (drivers/md/dm-raid1.c and dm-log.c, Linux 6.1, target 1.14):
//   table:  <log type> <#log args> <log arg>... <#mirrors> <device> <offset>...
//           [<#features> handle_errors|keep_log...]
//   log args: core <region size> [sync|nosync]; disk <log device> <region size> [sync|nosync]
//   status: <#mirrors> <device>... <in-sync regions>/<total regions> 1 <health letters>
//           <#log status args> <log status arg>...
//   health letters (one per mirror): A alive, F flush failed, D write failed,
//   S sync failed, R read failed, U unknown error.
//   log status: `1 core` or `3 disk <log device> A|D|F`.

import { ArgReader, checkDevice, invalidParams, UINT_MAX } from './args.js';
import type { Sectors, TargetType } from './table.js';

/** Mirrors a set may have (MAX_NR_MIRRORS in dm-raid1.c: DM_KCOPYD_MAX_REGIONS + 1). */
export const MIRROR_MAX_MIRRORS = 9;
export const MIRROR_FEATURES = ['handle_errors', 'keep_log'] as const;
export type MirrorFeature = (typeof MIRROR_FEATURES)[number];
export type MirrorHealth = 'A' | 'F' | 'D' | 'S' | 'R' | 'U';
const HEALTH_PATTERN = /^[AFDSRU]+$/;
const SYNC_WORDS = ['sync', 'nosync'] as const;
/** The one status word between the region counts and the health letters. */
const HEALTH_FIELD_COUNT = '1';

export interface MirrorLog {
  type: 'core' | 'disk';
  /** Only for a disk log. */
  device?: string;
  /** Region size in sectors. */
  regionSize: Sectors;
  /** Force a full resync (sync) or assume in sync (nosync); omitted: the log decides. */
  sync?: 'sync' | 'nosync';
}

export interface MirrorLeg {
  device: string;
  offset: Sectors;
}

export interface MirrorParams {
  log: MirrorLog;
  mirrors: MirrorLeg[];
  features: MirrorFeature[];
}

export interface MirrorStatus {
  devices: string[];
  inSyncRegions: bigint;
  totalRegions: bigint;
  health: MirrorHealth[];
  /** The log's own status words, such as ['core'] or ['disk', '7:3', 'A']. */
  log: string[];
}

function formatLog(log: MirrorLog): string[] {
  const words: string[] = [];
  if (log.type === 'disk') {
    if (log.device === undefined) invalidParams('mirror', 'a disk log needs a device');
    words.push(checkDevice('mirror', 'log device', log.device));
  } else if (log.type !== 'core') {
    invalidParams('mirror', `log type must be core or disk, found ${JSON.stringify(log.type)}`);
  } else if (log.device !== undefined) {
    invalidParams('mirror', 'a core log takes no device');
  }
  if (log.regionSize <= 0n || log.regionSize > UINT_MAX) invalidParams('mirror', `region size ${log.regionSize} is out of range`);
  words.push(String(log.regionSize));
  if (log.sync !== undefined) words.push(log.sync);
  return [log.type, String(words.length), ...words];
}

function parseLog(args: ArgReader): MirrorLog {
  const type = args.oneOf('log type', ['core', 'disk']);
  const words = new ArgReader('mirror', 'table', args.counted('log argument').join(' '));
  const log: MirrorLog = { type, regionSize: 0n as Sectors };
  if (type === 'disk') log.device = words.device('log device');
  log.regionSize = words.integer('region size', UINT_MAX) as Sectors;
  if (log.regionSize === 0n) args.fail('region size must be positive');
  if (words.remaining > 0) log.sync = words.oneOf('sync option', SYNC_WORDS);
  if (words.remaining > 0) args.fail('too many log arguments');
  return log;
}

export const mirrorType: TargetType<MirrorParams, MirrorStatus> = {
  name: 'mirror',
  module: 'dm_mirror',
  formatParams(params) {
    if (params.mirrors.length < 2 || params.mirrors.length > MIRROR_MAX_MIRRORS) {
      invalidParams('mirror', `a mirror set has 2 to ${MIRROR_MAX_MIRRORS} legs, found ${params.mirrors.length}`);
    }
    const words = formatLog(params.log);
    words.push(String(params.mirrors.length));
    for (const leg of params.mirrors) words.push(checkDevice('mirror', 'mirror device', leg.device), String(leg.offset));
    for (const feature of params.features) {
      if (!MIRROR_FEATURES.includes(feature)) invalidParams('mirror', `unknown feature ${JSON.stringify(feature)}`);
    }
    const features = MIRROR_FEATURES.filter((feature) => params.features.includes(feature));
    if (features.length > 0) words.push(String(features.length), ...features);
    return words.join(' ');
  },
  parseParams(params) {
    const args = new ArgReader('mirror', 'table', params);
    const log = parseLog(args);
    const count = args.small('mirror count', BigInt(MIRROR_MAX_MIRRORS));
    if (count < 2) args.fail(`a mirror set has 2 to ${MIRROR_MAX_MIRRORS} legs, found ${count}`);
    const mirrors: MirrorLeg[] = [];
    for (let i = 0; i < count; i++) mirrors.push({ device: args.device(`mirror ${i} device`), offset: args.sectors(`mirror ${i} offset`) });
    const words = args.remaining > 0 ? args.counted('feature') : [];
    args.end();
    for (const word of words) {
      if (!(MIRROR_FEATURES as readonly string[]).includes(word)) args.fail(`unknown feature ${JSON.stringify(word)}`);
    }
    return { log, mirrors, features: MIRROR_FEATURES.filter((feature) => words.includes(feature)) };
  },
  parseStatus(line) {
    const args = new ArgReader('mirror', 'status', line);
    const count = args.small('mirror count', BigInt(MIRROR_MAX_MIRRORS));
    if (count === 0) args.fail('mirror count must be positive');
    const devices: string[] = [];
    for (let i = 0; i < count; i++) devices.push(args.device(`mirror ${i} device`));
    const regions = args.fraction('regions in sync');
    args.literal(HEALTH_FIELD_COUNT);
    const health = args.word('mirror health');
    if (!HEALTH_PATTERN.test(health) || health.length !== count) args.fail(`mirror health must be ${count} letters of AFDSRU, found ${JSON.stringify(health)}`);
    const log = args.counted('log status argument');
    args.end();
    return { devices, inSyncRegions: regions.used, totalRegions: regions.total, health: [...health] as MirrorHealth[], log };
  },
};
