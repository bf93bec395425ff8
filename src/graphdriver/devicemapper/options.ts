// The devicemapper driver's storage options, under Docker's names
// (`dm.basesize=10G`, ...), parsed and checked before anything is created.

import { GraphDriverErrorCode, driverError } from '../errors.js';
import { parseSize } from '../units.js';

/** Bytes in a sector, the unit of dm tables. */
export const SECTOR_BYTES = 512n;
/** Docker's defaults: a 10 GiB base device over a 100 GiB data and 2 GiB metadata file. */
export const DEFAULT_BASE_SIZE = 10n * 1024n ** 3n;
export const DEFAULT_LOOP_DATA_SIZE = 100n * 1024n ** 3n;
export const DEFAULT_LOOP_METADATA_SIZE = 2n * 1024n ** 3n;
/** 64 KiB data blocks (128 sectors) and a low water mark of 32768 blocks. */
export const DEFAULT_BLOCK_SIZE_BYTES = 64n * 1024n;
export const DEFAULT_LOW_WATER_MARK = 32768n;
/** Percentage of data and metadata blocks that must stay free for a new device. */
export const DEFAULT_MIN_FREE_SPACE_PERCENT = 10;
export const DEFAULT_FILESYSTEM = 'ext4';
/** THIN_METADATA_MAX_SECTORS (dm-thin-metadata.h): the pool ignores metadata beyond this. */
export const THIN_METADATA_MAX_BYTES = 33292800n * SECTOR_BYTES;
/** Thin pool block sizes: a multiple of 64 KiB from 64 KiB to 1 GiB (dm-thin.c). */
const BLOCK_SIZE_MIN_BYTES = 64n * 1024n;
const BLOCK_SIZE_MAX_BYTES = 1024n ** 3n;

export interface DeviceSetOptions {
  baseSize: bigint;
  loopDataSize: bigint;
  loopMetadataSize: bigint;
  filesystem: string;
  mkfsArgs: string[];
  mountOptions: string;
  /** Data block size in sectors. */
  blockSizeSectors: bigint;
  /** An existing pool to use instead of loop files. */
  thinPoolDevice?: string;
  deferredRemoval: boolean;
  deferredDeletion: boolean;
  minFreeSpacePercent: number;
  /** Prefix of the dm device names; default `docker-<major>:<minor>-<inode>` of the driver folder. */
  devicePrefix?: string;
  /** Things the caller should know, such as a metadata file the kernel cannot use whole. */
  warnings: string[];
}

function invalid(message: string): never {
  throw driverError(GraphDriverErrorCode.INVALID_OPTION, message);
}

function parseBoolean(value: string, key: string): boolean {
  if (/^(1|t|true)$/i.test(value)) return true;
  if (/^(0|f|false)$/i.test(value)) return false;
  return invalid(`Invalid value ${JSON.stringify(value)} for ${key}: use true or false`);
}

function checkSectorMultiple(bytes: bigint, key: string): void {
  if (bytes <= 0n || bytes % SECTOR_BYTES !== 0n) invalid(`Invalid ${key} ${bytes} bytes: it must be a positive multiple of ${SECTOR_BYTES}`);
}

/** Parses `dm.*` storage options (`key=value` each) over Docker's defaults. */
export function parseDeviceSetOptions(options: readonly string[] = []): DeviceSetOptions {
  const result: DeviceSetOptions = {
    baseSize: DEFAULT_BASE_SIZE,
    loopDataSize: DEFAULT_LOOP_DATA_SIZE,
    loopMetadataSize: DEFAULT_LOOP_METADATA_SIZE,
    filesystem: DEFAULT_FILESYSTEM,
    mkfsArgs: [],
    mountOptions: '',
    blockSizeSectors: DEFAULT_BLOCK_SIZE_BYTES / SECTOR_BYTES,
    deferredRemoval: false,
    deferredDeletion: false,
    minFreeSpacePercent: DEFAULT_MIN_FREE_SPACE_PERCENT,
    warnings: [],
  };
  for (const option of options) {
    const equals = option.indexOf('=');
    if (equals < 0) invalid(`Invalid storage option ${JSON.stringify(option)}: use key=value`);
    const key = option.slice(0, equals).trim().toLowerCase();
    const value = option.slice(equals + 1).trim();
    switch (key) {
      case 'dm.basesize':
        result.baseSize = parseSize(value, key);
        checkSectorMultiple(result.baseSize, key);
        break;
      case 'dm.loopdatasize':
        result.loopDataSize = parseSize(value, key);
        checkSectorMultiple(result.loopDataSize, key);
        break;
      case 'dm.loopmetadatasize':
        result.loopMetadataSize = parseSize(value, key);
        checkSectorMultiple(result.loopMetadataSize, key);
        break;
      case 'dm.fs':
        if (!/^[a-z0-9]+$/.test(value)) invalid(`Invalid value ${JSON.stringify(value)} for dm.fs: name a filesystem such as ext4`);
        result.filesystem = value;
        break;
      case 'dm.mkfsarg':
        result.mkfsArgs.push(value);
        break;
      case 'dm.mountopt':
        result.mountOptions = result.mountOptions ? `${result.mountOptions},${value}` : value;
        break;
      case 'dm.blocksize': {
        const bytes = parseSize(value, key);
        if (bytes < BLOCK_SIZE_MIN_BYTES || bytes > BLOCK_SIZE_MAX_BYTES || bytes % BLOCK_SIZE_MIN_BYTES !== 0n) {
          invalid(`Invalid dm.blocksize ${value}: use a multiple of 64K from 64K to 1G`);
        }
        result.blockSizeSectors = bytes / SECTOR_BYTES;
        break;
      }
      case 'dm.thinpooldev':
        if (value === '') invalid('Invalid dm.thinpooldev: name an existing thin pool device');
        result.thinPoolDevice = value.replace(/^\/dev\/mapper\//, '');
        break;
      case 'dm.use_deferred_removal':
        result.deferredRemoval = parseBoolean(value, key);
        break;
      case 'dm.use_deferred_deletion':
        result.deferredDeletion = parseBoolean(value, key);
        break;
      case 'dm.min_free_space': {
        const match = /^(\d{1,2})%?$/.exec(value);
        if (!match) invalid(`Invalid dm.min_free_space ${JSON.stringify(value)}: use a percentage from 0% to 99%`);
        result.minFreeSpacePercent = Number(match[1]);
        break;
      }
      case 'dm.device_prefix':
        if (!/^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,29}$/.test(value)) {
          invalid(`Invalid dm.device_prefix ${JSON.stringify(value)}: use up to 30 characters of [A-Za-z0-9_.:+-]`);
        }
        result.devicePrefix = value;
        break;
      default:
        invalid(`Unknown storage option ${JSON.stringify(key)} for the devicemapper driver`);
    }
  }
  if (result.loopMetadataSize > THIN_METADATA_MAX_BYTES) {
    result.warnings.push(
      `Metadata file size ${result.loopMetadataSize} bytes exceeds the ${THIN_METADATA_MAX_BYTES} bytes a thin pool can use; the rest stays unused`,
    );
  }
  return result;
}
