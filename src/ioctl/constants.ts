// Device-mapper kernel ABI, mirrored from include/uapi/linux/dm-ioctl.h
// (Linux 6.1, interface 4.47.0). Each name is the C name it copies.

/** DM_IOCTL: the ioctl type byte of every device-mapper command. */
export const DM_IOCTL = 0xfd;

/** DM_VERSION_MAJOR: the only major interface version the kernel accepts. */
export const DM_VERSION_MAJOR = 4;

/** DM_NAME_LEN: bytes for a device name including its NUL. */
export const DM_NAME_LEN = 128;
/** DM_UUID_LEN: bytes for a uuid including its NUL. */
export const DM_UUID_LEN = 129;
/** DM_MAX_TYPE_NAME: bytes for a target type name including its NUL. */
export const DM_MAX_TYPE_NAME = 16;

/** The device-mapper commands, numbered as `enum { DM_VERSION_CMD = 0, ... }`. */
export const DmCommand = {
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
} as const;

export type DmCommandName = keyof typeof DmCommand;
export type DmCommandNumber = (typeof DmCommand)[DmCommandName];

/** Number of device-mapper commands the 4.47 interface defines. */
export const DM_COMMAND_COUNT = Object.keys(DmCommand).length;

/**
 * Minimum interface version of each command, as lvm2's libdm sends it
 * (`_cmd_data_v4` in libdm-iface.c). Sending the newest version instead makes
 * older kernels reject the request with "ioctl interface mismatch".
 */
export const DM_COMMAND_MIN_VERSION: Readonly<Record<DmCommandName, readonly [number, number, number]>> = {
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
};

/** `struct dm_ioctl` flag bits (the `flags` field). */
export const DmFlag = {
  DM_READONLY_FLAG: 1 << 0,
  DM_SUSPEND_FLAG: 1 << 1,
  DM_EXISTS_FLAG: 1 << 2,
  DM_PERSISTENT_DEV_FLAG: 1 << 3,
  DM_STATUS_TABLE_FLAG: 1 << 4,
  DM_ACTIVE_PRESENT_FLAG: 1 << 5,
  DM_INACTIVE_PRESENT_FLAG: 1 << 6,
  DM_BUFFER_FULL_FLAG: 1 << 8,
  DM_SKIP_BDGET_FLAG: 1 << 9,
  DM_SKIP_LOCKFS_FLAG: 1 << 10,
  DM_NOFLUSH_FLAG: 1 << 11,
  DM_QUERY_INACTIVE_TABLE_FLAG: 1 << 12,
  DM_UEVENT_GENERATED_FLAG: 1 << 13,
  DM_UUID_FLAG: 1 << 14,
  DM_SECURE_DATA_FLAG: 1 << 15,
  DM_DATA_OUT_FLAG: 1 << 16,
  DM_DEFERRED_REMOVE: 1 << 17,
  DM_INTERNAL_SUSPEND_FLAG: 1 << 18,
  DM_IMA_MEASUREMENT_FLAG: 1 << 19,
} as const;

export type DmFlagName = keyof typeof DmFlag;

/** `struct dm_ioctl` layout: 312 bytes, host-endian, 8-byte aligned. */
export const DmIoctlOffset = {
  version: 0, // __u32 version[3]
  data_size: 12, // __u32: total size of the buffer, header included
  data_start: 16, // __u32: offset of the payload from the buffer start
  target_count: 20, // __u32
  open_count: 24, // __s32
  flags: 28, // __u32
  event_nr: 32, // __u32: also carries the udev cookie on the way in
  padding: 36, // __u32
  dev: 40, // __u64: huge_encode_dev() of the device number
  name: 48, // char name[DM_NAME_LEN]
  uuid: 176, // char uuid[DM_UUID_LEN]
  data: 305, // char data[7]: padding up to the 8-byte boundary
} as const;

/** sizeof(struct dm_ioctl). */
export const DM_IOCTL_SIZE = 312;

/** `struct dm_target_spec`: 40 bytes followed by the parameter string. */
export const DmTargetSpecOffset = {
  sector_start: 0, // __u64
  length: 8, // __u64
  status: 16, // __s32
  next: 20, // __u32: on load relative to this spec, on read to the data area
  target_type: 24, // char target_type[DM_MAX_TYPE_NAME]
} as const;
export const DM_TARGET_SPEC_SIZE = 40;

/** `struct dm_name_list`: dev, next, then the NUL-terminated name. */
export const DmNameListOffset = {
  dev: 0, // __u64
  next: 8, // __u32: offset of the next record from this one, 0 for the last
  name: 12, // char name[0]
} as const;

/** Flag bits that follow a `dm_name_list` name (interface 4.46 and later). */
export const DM_NAME_LIST_FLAG_HAS_UUID = 1;
export const DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID = 2;
/** First interface minor that appends event_nr and flags to each name record. */
export const DM_NAME_LIST_EVENT_NR_MINOR = 37;
/** First interface minor that appends uuids when DM_LIST_DEVICES carries DM_UUID_FLAG. */
export const DM_NAME_LIST_UUID_MINOR = 46;

/** `struct dm_target_versions`: next, version[3], then the name. */
export const DmTargetVersionsOffset = {
  next: 0, // __u32
  version: 4, // __u32 version[3]
  name: 16, // char name[0]
} as const;

/** `struct dm_target_deps`: count, padding, then __u64 dev[count]. */
export const DmTargetDepsOffset = {
  count: 0, // __u32
  padding: 4, // __u32
  dev: 8, // __u64 dev[0]
} as const;

/** `struct dm_target_msg`: the sector, then the NUL-terminated message. */
export const DmTargetMsgOffset = {
  sector: 0, // __u64
  message: 8, // char message[0]
} as const;

/** Every record in the data area starts on this boundary. */
export const DM_ALIGNMENT = 8;

/** Major number and minor number of /dev/mapper/control (misc device 10:236). */
export const DM_CONTROL_MAJOR = 10;
export const DM_CONTROL_MINOR = 236;
export const DM_CONTROL_PATH = '/dev/mapper/control';
export const DM_DIR = '/dev/mapper';

// asm-generic/ioctl.h request encoding.
const IOC_NRBITS = 8;
const IOC_TYPEBITS = 8;
const IOC_SIZEBITS = 14;
const IOC_NRSHIFT = 0;
const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_WRITE = 1;
const IOC_READ = 2;

/** `_IOWR(type, nr, size)` from asm-generic/ioctl.h, as an unsigned number. */
export function iowr(type: number, nr: number, size: number): number {
  const dir = IOC_READ | IOC_WRITE;
  return (
    ((dir << IOC_DIRSHIFT) >>> 0) +
    (size << IOC_SIZESHIFT) +
    (type << IOC_TYPESHIFT) +
    (nr << IOC_NRSHIFT)
  );
}

/** The ioctl request number of a device-mapper command: `_IOWR(DM_IOCTL, nr, struct dm_ioctl)`. */
export function dmRequest(command: DmCommandName): number {
  return iowr(DM_IOCTL, DmCommand[command], DM_IOCTL_SIZE);
}

/** Name of a command number, or undefined for a number the interface does not define. */
export function commandName(nr: number): DmCommandName | undefined {
  for (const [name, value] of Object.entries(DmCommand)) {
    if (value === nr) return name as DmCommandName;
  }
  return undefined;
}

/** Names of the flag bits set in `flags`, lowest bit first. */
export function flagNames(flags: number): DmFlagName[] {
  const names: DmFlagName[] = [];
  for (const [name, bit] of Object.entries(DmFlag)) {
    if ((flags & bit) !== 0) names.push(name as DmFlagName);
  }
  return names;
}
