// The shape every dmctl command has, and what it gets to run: the parsed
// command line, output streams and a lazily opened device-mapper handle.

import fs from 'node:fs';

import type { NameMangling } from '../dm/mangle.js';
import { openDeviceMapper, type DeviceMapper } from '../index.js';
import type { ParsedArgs } from './args.js';

/** Output stream of a command; tests pass collecting writers. */
export interface Writer {
  write(text: string): void;
}

/** The input, output and device-mapper handle of a running command. */
export interface CommandContext {
  /** The words after the command name that are not options. */
  args: string[];
  /** The words after the command name exactly as given, for commands that parse their own options. */
  rawArgs: string[];
  parsed: ParsedArgs;
  out: Writer;
  err: Writer;
  /** Reads the whole of standard input (a table given on stdin). */
  readStdin(): string;
  /** Opens /dev/mapper/control on first use; the handle is closed when the command ends. */
  dm(): DeviceMapper;
}

/** One dmctl command, described the way dmsetup's command table does. */
export interface Command {
  name: string;
  /** Arguments and options after the name, as `dmsetup help` prints them. */
  usage: string;
  /** One line for the command list. */
  summary: string;
  /** Paragraphs for `dmctl help NAME`: what each option sets, in what unit. */
  details?: string;
  minArgs: number;
  /** -1 for no maximum. */
  maxArgs: number;
  /** With several device arguments, run once per device and stop at the first failure. */
  repeatable?: boolean;
  /** Hidden from `dmctl help`'s list (aliases). */
  hidden?: boolean;
  /** The command parses `rawArgs` itself, so dmctl does not reject options it does not know. */
  ownOptions?: boolean;
  /** Runs the command; a returned number is the exit status (commands with their own exit codes). */
  run(context: CommandContext): void | number | Promise<void | number>;
}

/**
 * A failure whose message (if any) goes to stderr before dmsetup's closing
 * "Command failed."; the exit status is 1.
 */
export class CommandFailure extends Error {
  constructor(
    message = '',
    readonly printCommandFailed = true,
  ) {
    super(message);
  }
}

/** True when `name` was given on the command line. */
export function hasSwitch(parsed: ParsedArgs, name: string): boolean {
  return (parsed.switches.get(name) ?? 0) > 0;
}

/** Returns the value of `--name`, or undefined. */
export function optionValue(parsed: ParsedArgs, name: string): string | undefined {
  return parsed.values.get(name);
}

/** Returns the name mangling mode of `--manglename`, checked as dmsetup checks it. */
export function manglingMode(parsed: ParsedArgs): NameMangling {
  const mode = optionValue(parsed, 'manglename');
  if (mode === undefined) return 'auto';
  const lower = mode.toLowerCase();
  if (lower === 'auto' || lower === 'hex' || lower === 'none') return lower;
  throw new CommandFailure('Unknown name mangling mode', false);
}

/** Builds the context the real process runs a command with. */
export function processContext(parsed: ParsedArgs, args: string[], rawArgs: string[]): CommandContext & { close(): void } {
  let handle: DeviceMapper | undefined;
  return {
    args,
    rawArgs,
    parsed,
    out: process.stdout,
    err: process.stderr,
    readStdin: () => fs.readFileSync(0, 'utf8'),
    dm: () => {
      // --noudevsync: make /dev/mapper nodes directly even when udev runs, as dmsetup does.
      const udev = parsed.switches.has('noudevsync') ? 'direct' : 'auto';
      handle ??= openDeviceMapper({ nameMangling: manglingMode(parsed), udev });
      return handle;
    },
    close: () => handle?.close(),
  };
}
