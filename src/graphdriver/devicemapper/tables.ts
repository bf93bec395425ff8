// The two table lines the device set loads, written out here so the driver
// does not follow changes in the target builders' signatures:
//   thin-pool: <metadata dev> <data dev> <block size> <low water mark> <#features> <features...>
//   thin:      <pool dev> <device id>
// (Documentation/admin-guide/device-mapper/thin-provisioning.rst).

import type { TargetSpec } from '../../ioctl/codec.js';

/** `0 <length> thin-pool <metadata> <data> <block size> <low water mark> 1 skip_block_zeroing`, as Docker loaded it. */
export function thinPoolTable(length: bigint, metadataDev: string, dataDev: string, blockSize: bigint, lowWaterMark: bigint): TargetSpec {
  return { start: 0n, length, type: 'thin-pool', params: `${metadataDev} ${dataDev} ${blockSize} ${lowWaterMark} 1 skip_block_zeroing` };
}

/** `0 <sectors> thin <pool dev> <device id>`. */
export function thinTable(sectors: bigint, poolDev: string, deviceId: number): TargetSpec {
  return { start: 0n, length: sectors, type: 'thin', params: `${poolDev} ${deviceId}` };
}
