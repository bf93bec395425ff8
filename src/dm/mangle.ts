// Name mangling as lvm2's libdm does it (libdm-common.c): udev rules split
// on whitespace and cannot carry some bytes, so such bytes are sent to the
// kernel as `\xNN`. The kernel stores the mangled form; replies are demangled.

import { DmError, DmErrorCode } from '../ioctl/errors.js';

/**
 * `auto` mangles bytes outside the whitelist but keeps `\xNN` sequences that
 * are already mangled; `hex` mangles every byte outside the whitelist, `\`
 * included; `none` sends names unchanged.
 */
export type NameMangling = 'auto' | 'hex' | 'none';

/** Bytes udev passes through unchanged: `0-9 A-Z a-z # + - . : = @ _`. */
function isWhitelisted(byte: number): boolean {
  return (
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    '#+-.:=@_'.includes(String.fromCharCode(byte))
  );
}

const BACKSLASH = 0x5c;
const LOWER_X = 0x78;
const MANGLED_SEQUENCE = /\\x([0-9a-fA-F]{2})/g;
/** A mangled backslash followed by `x`: the name was mangled twice. */
const DOUBLE_MANGLED = '\\x5cx';

function isMangledAt(bytes: Buffer, i: number): boolean {
  return (
    bytes[i] === BACKSLASH &&
    bytes[i + 1] === LOWER_X &&
    /^[0-9a-fA-F]{2}$/.test(bytes.toString('latin1', i + 2, i + 4))
  );
}

/** Returns the kernel form of `name` under `mode`. */
export function mangleName(name: string, mode: NameMangling = 'auto'): string {
  if (mode === 'none') return name;
  if (mode === 'auto' && name.includes(DOUBLE_MANGLED)) {
    throw new DmError(
      DmErrorCode.INVALID_NAME,
      `Invalid device name ${JSON.stringify(name)}: it contains "${DOUBLE_MANGLED}", which means it was mangled twice; pass the name unmangled`,
      { device: name },
    );
  }
  const bytes = Buffer.from(name, 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    if (mode === 'auto' && isMangledAt(bytes, i)) {
      out += bytes.toString('latin1', i, i + 4);
      i += 3;
    } else if (isWhitelisted(bytes[i])) {
      out += String.fromCharCode(bytes[i]);
    } else {
      out += `\\x${bytes[i].toString(16).padStart(2, '0')}`;
    }
  }
  return out;
}

/** Returns the user form of a kernel name: `\xNN` sequences decoded (UTF-8 restored). */
export function demangleName(name: string, mode: NameMangling = 'auto'): string {
  if (mode === 'none' || !name.includes('\\x')) return name;
  const bytes: number[] = [];
  let last = 0;
  for (const match of name.matchAll(MANGLED_SEQUENCE)) {
    bytes.push(...Buffer.from(name.slice(last, match.index), 'utf8'));
    bytes.push(parseInt(match[1], 16));
    last = (match.index ?? 0) + match[0].length;
  }
  bytes.push(...Buffer.from(name.slice(last), 'utf8'));
  return Buffer.from(bytes).toString('utf8');
}
