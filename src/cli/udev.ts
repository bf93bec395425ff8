// dmctl's udev commands, printing what dmsetup prints: udevcomplete,
// udevcomplete_all, udevcookies and mknodes.

import readline from 'node:readline';

import { mangleName, type NameMangling } from '../dm/mangle.js';
import { DmError, DmErrorCode } from '../ioctl/errors.js';
import { sysv as loadSysv, type SysvSemaphores } from '../ioctl/sysv.js';
import { completeCookie, DM_COOKIE_MAGIC, listCookies, parseCookie, removeCookies, type CookieStatus } from '../udev/cookie.js';
import { kernelDevices, reconcileNode, reconcileNodes } from '../udev/mknodes.js';
import { DirectNodes } from '../udev/nodes.js';
import { openDeviceMapper, type OpenDeviceMapperOptions } from '../index.js';
import { hasSwitch, manglingMode, type Command, type Writer } from './command.js';

/** Streams and dependencies of the udev commands; tests replace each. */
export interface UdevCommandIo {
  out: Writer;
  err: Writer;
  /** Answers udevcomplete_all's question; default process.stdin. */
  stdin?: NodeJS.ReadableStream;
  sysv?: SysvSemaphores;
  /** Folder that contains the nodes; default /dev/mapper. */
  nodeDir?: string;
  /** Options for the handle mknodes opens (tests pass a fake kernel's libc). */
  deviceMapperOptions?: OpenDeviceMapperOptions;
  /** Name mangling of mknodes NAME (--manglename); default auto. */
  mangling?: NameMangling;
  /** The current time in seconds since the epoch. */
  now?: () => number;
}

const MAGIC_TEXT = `${DM_COOKIE_MAGIC} (0x${DM_COOKIE_MAGIC.toString(16)})`;
const HEADER = 'Cookie       Semid      Value      Last semop time           Last change time\n';

/**
 * `dmsetup udevcomplete COOKIE`: subtracts 1 from the cookie, printing
 * nothing. A value whose low 16 bits are 0 carries udev flags only and is
 * accepted silently, as dmsetup does. Unlike dmsetup, which does nothing
 * when it finds no udev running, dmctl always completes the cookie.
 */
export function udevcomplete(cookie: string, io: UdevCommandIo): void {
  completeCookie(io.sysv ?? loadSysv(), parseCookie(cookie));
}

/** `dmsetup udevcookies`: one line per cookie semaphore under dmsetup's header. */
export function udevcookies(io: UdevCommandIo): void {
  io.out.write(HEADER);
  for (const cookie of listCookies(io.sysv ?? loadSysv())) io.out.write(formatCookieLine(cookie));
}

/** Formats one line of udevcookies as dmsetup's "0x%-10x %-10d %-10d %s  %s". */
export function formatCookieLine(cookie: CookieStatus): string {
  const key = `0x${cookie.key.toString(16).padEnd(10)}`;
  return `${key} ${String(cookie.semid).padEnd(10)} ${String(cookie.value).padEnd(10)} ${formatCTime(cookie.otime)}  ${formatCTime(cookie.ctime)}\n`;
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Formats seconds since the epoch in local time as ctime(3) does, without its newline: "Thu Jan  1 00:00:00 1970". */
export function formatCTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  const two = (n: number): string => String(n).padStart(2, '0');
  const time = `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
  return `${WEEKDAYS[date.getDay()]} ${MONTHS[date.getMonth()]} ${String(date.getDate()).padStart(2)} ${time} ${date.getFullYear()}`;
}

/**
 * `dmsetup udevcomplete_all [age_in_minutes]`: prompts for confirmation
 * unless `yes` (the end of input counts as no), then removes the cookies and
 * prints the counts. Cookies used or changed within the last `age` minutes
 * are skipped.
 */
export async function udevcompleteAll(age: string | undefined, yes: boolean, io: UdevCommandIo): Promise<void> {
  const minutes = age === undefined ? 0 : parseAge(age);
  if (!yes) {
    const older = minutes > 0 ? `older than ${minutes} minutes ` : '';
    io.err.write(`WARNING: This operation will destroy all semaphores ${older}with keys that have a prefix ${MAGIC_TEXT}.\n`);
    if ((await askYesNo('Do you really want to continue? [y/n]: ', io.stdin ?? process.stdin, io.out)) === 'n') {
      io.out.write(`Semaphores with keys prefixed by ${MAGIC_TEXT} NOT destroyed.\n`);
      return;
    }
  }
  const now = io.now?.() ?? Math.floor(Date.now() / 1000);
  const result = removeCookies(io.sysv ?? loadSysv(), minutes, now);
  for (const failure of result.failed) {
    io.err.write(`Could not cleanup notification semaphore with semid ${failure.semid} and cookie value ${failure.key} (0x${failure.key.toString(16)}): ${failure.code}\n`);
  }
  io.out.write(`${result.destroyed} semaphores with keys prefixed by ${MAGIC_TEXT} destroyed. ${result.skipped} skipped.\n`);
}

/** Reads age_in_minutes as dmsetup's sscanf("%u") does: leading digits, the rest ignored. */
function parseAge(text: string): number {
  const digits = /^\s*\+?(\d+)/.exec(text)?.[1];
  if (digits === undefined) {
    throw new DmError(DmErrorCode.INVALID_ARGUMENT, `Failed to read age_in_minutes parameter ${JSON.stringify(text)}: give a whole number of minutes`);
  }
  return Number(digits);
}

/**
 * Prompts until a line contains y or n, of which the last one counts, as
 * dmsetup reads characters. The end of input counts as n.
 */
async function askYesNo(prompt: string, input: NodeJS.ReadableStream, output: Writer): Promise<'y' | 'n'> {
  output.write(prompt);
  const lines = readline.createInterface({ input, terminal: false });
  try {
    for await (const line of lines) {
      const answer = /[yn](?=[^yn]*$)/i.exec(line)?.[0].toLowerCase();
      if (answer === 'y' || answer === 'n') return answer;
      output.write(prompt);
    }
  } finally {
    lines.close();
  }
  output.write('\n');
  return 'n';
}

/**
 * `dmsetup mknodes [NAME...]`: with names, fixes each device's node, or
 * removes it when the kernel has no such device. Without names, it
 * reconciles the whole folder with the kernel's list. Prints nothing.
 */
export function mknodes(names: readonly string[], io: UdevCommandIo): void {
  const nodes = new DirectNodes({ dir: io.nodeDir, libc: io.deviceMapperOptions?.libc });
  // Names travel unmangled on this handle, so the names it returns are the kernel's, which are the node names.
  const dm = openDeviceMapper({ ...io.deviceMapperOptions, udev: 'direct', nameMangling: 'none' });
  try {
    if (names.length === 0) {
      reconcileNodes(nodes, kernelDevices(dm));
      return;
    }
    for (const name of names) {
      const kernelName = mangleName(name, io.mangling ?? 'auto');
      const info = dm.info(kernelName);
      reconcileNode(nodes, kernelName, info.exists ? { name: info.name, dev: { major: info.major, minor: info.minor } } : undefined);
    }
  } finally {
    dm.close();
  }
}

/** The udev commands as dmctl registers them. */
export const udevCommands: readonly Command[] = [
  {
    name: 'mknodes',
    usage: '[<device>...]',
    summary: 'make /dev/mapper match the kernel: create missing or stale nodes, remove nodes of devices that are gone',
    minArgs: 0,
    maxArgs: -1,
    repeatable: true,
    run: (context) => mknodes(context.args, { out: context.out, err: context.err, mangling: manglingMode(context.parsed) }),
  },
  {
    name: 'udevcomplete',
    usage: '<cookie>',
    summary: 'complete a udev cookie, as lvm2\'s 95-dm-notify.rules does after udev processed a uevent',
    details: 'COOKIE is the DM_COOKIE value udev passes (decimal) or a key that udevcookies prints (0xd4d...).',
    minArgs: 1,
    maxArgs: 1,
    run: (context) => udevcomplete(context.args[0], { out: context.out, err: context.err }),
  },
  {
    name: 'udevcomplete_all',
    usage: '[<age_in_minutes>]',
    summary: 'remove every udev cookie semaphore, waking whatever waits on one',
    details: 'With AGE_IN_MINUTES, cookies used or changed within that many minutes are kept. -y|--yes skips the question.',
    minArgs: 0,
    maxArgs: 1,
    run: (context) => udevcompleteAll(context.args[0], hasSwitch(context.parsed, 'yes'), { out: context.out, err: context.err }),
  },
  {
    name: 'udevcookies',
    usage: '',
    summary: 'list udev cookie semaphores with their values and times',
    minArgs: 0,
    maxArgs: 0,
    run: (context) => udevcookies({ out: context.out, err: context.err }),
  },
];
