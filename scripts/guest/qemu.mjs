// Boots the guest in QEMU, streams the command output from the second
// serial port, and returns the exit status that /init reports there.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';

import { EXIT_MARKER_PREFIX } from './image.mjs';
import { GuestError, log } from './host.mjs';

export const QEMU_BINARY = 'qemu-system-x86_64';
// Exit statuses of the runner itself, as in GNU timeout(1).
export const EXIT_TIMEOUT = 124;
export const EXIT_RUNNER_FAILED = 125;
const SIGNAL_EXIT_BASE = 128;

const MS_PER_SECOND = 1000;
// Time QEMU gets to exit after SIGTERM before it is sent SIGKILL.
const KILL_GRACE_MS = 3000;
// Time QEMU gets to power off after the exit marker before it is stopped.
const POWEROFF_GRACE_MS = 10000;
const CONSOLE_TAIL_LINES = 40;
const GUEST_CPUS = 2;
const MAX_EXIT_STATUS_DIGITS = 3;
const CONSOLE_MESSAGE_PREFIX = 'dm-guest:';

// "quiet" keeps boot messages out of the console log, and "panic=-1"
// turns a panic into a reboot, which -no-reboot turns into a QEMU exit.
const KERNEL_COMMAND_LINE = 'console=ttyS0 panic=-1 quiet';

/**
 * Returns the QEMU arguments. The guest runs under TCG emulation and not
 * KVM, because on the Debian 12 machine this runner was developed on, KVM
 * guests stopped with "KVM internal error ... emulation failure" and QEMU
 * then hung.
 */
export function qemuArguments({ vmlinuz, initrd, consoleLog, memoryMiB }) {
  return [
    '-accel', 'tcg',
    '-cpu', 'max',
    '-smp', String(GUEST_CPUS),
    '-m', String(memoryMiB),
    '-nic', 'none',
    '-no-reboot',
    '-nodefaults',
    '-display', 'none',
    '-kernel', vmlinuz,
    '-initrd', initrd,
    '-append', KERNEL_COMMAND_LINE,
    // ttyS0 is the kernel console, ttyS1 carries the command output.
    '-serial', `file:${consoleLog}`,
    '-serial', 'stdio',
  ];
}

const MARKER_HEAD = `${EXIT_MARKER_PREFIX} `;
const MARKER = new RegExp(`${EXIT_MARKER_PREFIX} (\\d{1,${MAX_EXIT_STATUS_DIGITS}})@@\\n?`);
const MAX_MARKER_LENGTH = MARKER_HEAD.length + MAX_EXIT_STATUS_DIGITS + '@@\n'.length;
// Tail after MARKER_HEAD of a marker that has not fully arrived yet.
const MARKER_PARTIAL_TAIL = new RegExp(`^(\\d{0,${MAX_EXIT_STATUS_DIGITS}}|\\d{1,${MAX_EXIT_STATUS_DIGITS}}@)$`);

// Tells whether `text` may be the start of an exit marker that later output completes.
function isMarkerStart(text) {
  if (text.length <= MARKER_HEAD.length) {
    return MARKER_HEAD.startsWith(text);
  }
  const rest = text.slice(MARKER_HEAD.length);
  return text.startsWith(MARKER_HEAD) && MARKER_PARTIAL_TAIL.test(rest);
}

/**
 * Passes the guest output through to `write` and removes the exit marker.
 * It holds back only a tail that may be the start of the marker, so output
 * appears live. Output after the marker is dropped.
 */
export class ExitMarkerFilter {
  #pending = '';
  #write;
  status = null;

  constructor(write) {
    this.#write = write;
  }

  // Takes one chunk of output. Returns the exit status once the marker has arrived, and null before.
  push(chunk) {
    if (this.status !== null) {
      return this.status;
    }
    // latin1 maps each byte to one character and back, so the output is
    // passed on byte for byte even when a chunk splits a UTF-8 sequence.
    this.#pending += chunk.toString('latin1');
    const match = MARKER.exec(this.#pending);
    if (match) {
      this.#emit(this.#pending.slice(0, match.index));
      this.#pending = '';
      this.status = Number(match[1]);
      return this.status;
    }
    const holdFrom = this.#markerStartIndex();
    this.#emit(this.#pending.slice(0, holdFrom));
    this.#pending = this.#pending.slice(holdFrom);
    return null;
  }

  // Writes out whatever is held back; called when the output ends.
  flush() {
    this.#emit(this.#pending);
    this.#pending = '';
  }

  #markerStartIndex() {
    const first = Math.max(0, this.#pending.length - MAX_MARKER_LENGTH);
    for (let index = first; index < this.#pending.length; index++) {
      if (isMarkerStart(this.#pending.slice(index))) {
        return index;
      }
    }
    return this.#pending.length;
  }

  #emit(text) {
    if (text.length > 0) {
      this.#write(Buffer.from(text, 'latin1'));
    }
  }
}

/** Returns the last `count` lines of the console log, or a note that it is missing. */
export function consoleTail(consoleLog, count = CONSOLE_TAIL_LINES) {
  if (!existsSync(consoleLog)) {
    return `(no console log at ${consoleLog})`;
  }
  const text = readFileSync(consoleLog, 'utf8').replaceAll('\r', '').trimEnd();
  if (text === '') {
    return '(the console log is empty: the kernel runs with "quiet", so only warnings and errors appear there)';
  }
  return text.split('\n').slice(-count).join('\n');
}

// Copies the messages of /init (lines starting with "dm-guest:") from the console log to stderr.
function reportInitMessages(consoleLog) {
  if (!existsSync(consoleLog)) {
    return;
  }
  for (const line of readFileSync(consoleLog, 'utf8').replaceAll('\r', '').split('\n')) {
    if (line.startsWith(CONSOLE_MESSAGE_PREFIX)) {
      process.stderr.write(`guest: ${line}\n`);
    }
  }
}

function printConsoleTail(consoleLog) {
  process.stderr.write(`guest: last ${CONSOLE_TAIL_LINES} lines of ${consoleLog}:\n${consoleTail(consoleLog)}\n`);
}

/**
 * Runs QEMU until the guest reports the command's exit status, the timeout
 * passes, or QEMU exits. Resolves to the command's exit status, or to
 * EXIT_TIMEOUT, EXIT_RUNNER_FAILED, or 128 + N after this process got
 * signal N (SIGINT, SIGTERM or SIGHUP).
 */
export function runQemu({ vmlinuz, initrd, consoleLog, memoryMiB, timeoutSeconds }) {
  return new Promise((resolve, reject) => {
    const args = qemuArguments({ vmlinuz, initrd, consoleLog, memoryMiB });
    // stdin stays a pipe that is never written, because the serial port
    // on stdio also reads from it.
    const qemu = spawn(QEMU_BINARY, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const filter = new ExitMarkerFilter((buffer) => process.stdout.write(buffer));
    const timers = [];
    let timedOut = false;
    let receivedSignal = null;

    const stop = () => {
      qemu.kill('SIGTERM');
      timers.push(setTimeout(() => qemu.kill('SIGKILL'), KILL_GRACE_MS));
    };
    const onSignal = (signal) => {
      receivedSignal = signal;
      log(`received ${signal}, stopping QEMU …`);
      stop();
    };
    const forwardedSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (const signal of forwardedSignals) {
      process.on(signal, onSignal);
    }

    timers.push(setTimeout(() => {
      timedOut = true;
      log(`error: the command timed out after ${timeoutSeconds} s, so QEMU is being stopped. Raise the limit with --timeout SECONDS.`);
      stop();
    }, timeoutSeconds * MS_PER_SECOND));

    qemu.stdout.on('data', (chunk) => {
      const hadStatus = filter.status !== null;
      if (filter.push(chunk) !== null && !hadStatus) {
        timers.push(setTimeout(stop, POWEROFF_GRACE_MS));
      }
    });

    const cleanUp = () => {
      timers.forEach(clearTimeout);
      for (const name of forwardedSignals) {
        process.off(name, onSignal);
      }
    };

    qemu.on('error', (error) => {
      cleanUp();
      reject(new GuestError(`failed to start ${QEMU_BINARY}: ${error.message}`));
    });

    qemu.on('close', (code, signal) => {
      cleanUp();
      filter.flush();
      resolve(exitStatus({ filter, timedOut, receivedSignal, code, signal, consoleLog }));
    });
  });
}

function exitStatus({ filter, timedOut, receivedSignal, code, signal, consoleLog }) {
  if (filter.status !== null) {
    reportInitMessages(consoleLog);
    return filter.status;
  }
  if (receivedSignal !== null) {
    return SIGNAL_EXIT_BASE + osConstants.signals[receivedSignal];
  }
  if (timedOut) {
    printConsoleTail(consoleLog);
    return EXIT_TIMEOUT;
  }
  const ending = signal ? `was killed by ${signal}` : `exited with status ${code}`;
  log(`error: QEMU ${ending} before the guest reported the command's exit status`);
  printConsoleTail(consoleLog);
  return EXIT_RUNNER_FAILED;
}
