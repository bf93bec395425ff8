// Rules for device names and uuids, checked before any ioctl so a bad value
// never reaches the kernel. The kernel's own check_name() in dm-ioctl.c
// rejects `/` and the names `control`, `.` and `..`; the field sizes come from
// DM_NAME_LEN and DM_UUID_LEN.

import { DM_NAME_LEN, DM_UUID_LEN } from '../ioctl/constants.js';
import { DmError, DmErrorCode } from '../ioctl/errors.js';

/** Longest name in bytes: DM_NAME_LEN less the NUL. */
export const DM_NAME_MAX_BYTES = DM_NAME_LEN - 1;
/** Longest uuid in bytes: DM_UUID_LEN less the NUL. */
export const DM_UUID_MAX_BYTES = DM_UUID_LEN - 1;

const FORBIDDEN_NAMES = new Set(['.', '..', 'control']);

/** Throws ERR_DM_INVALID_NAME unless `name` is a name the kernel accepts. */
export function checkName(name: string, command?: string): void {
  const fail = (why: string): never => {
    throw new DmError(DmErrorCode.INVALID_NAME, `Invalid device name ${JSON.stringify(name)}: ${why}`, {
      command,
      device: name,
    });
  };
  if (typeof name !== 'string' || name.length === 0) fail('a name must not be empty');
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > DM_NAME_MAX_BYTES) {
    fail(`it is ${bytes} bytes long and the kernel allows at most ${DM_NAME_MAX_BYTES}; use a shorter name`);
  }
  if (name.includes('/')) fail('it contains "/"; choose a name without slashes');
  if (name.includes('\0')) fail('it contains a NUL byte');
  if (FORBIDDEN_NAMES.has(name)) fail('the kernel reserves ".", ".." and "control"; choose another name');
}

/** Throws ERR_DM_INVALID_UUID unless `uuid` fits the kernel's uuid field. */
export function checkUuid(uuid: string, command?: string, device?: string): void {
  const bytes = Buffer.byteLength(uuid, 'utf8');
  if (bytes > DM_UUID_MAX_BYTES) {
    throw new DmError(
      DmErrorCode.INVALID_UUID,
      `Invalid uuid ${JSON.stringify(uuid)}: it is ${bytes} bytes long and the kernel allows at most ${DM_UUID_MAX_BYTES}`,
      { command, device },
    );
  }
  if (uuid.includes('\0')) {
    throw new DmError(DmErrorCode.INVALID_UUID, `Invalid uuid ${JSON.stringify(uuid)}: it contains a NUL byte`, {
      command,
      device,
    });
  }
}
