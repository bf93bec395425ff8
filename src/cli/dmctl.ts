#!/usr/bin/env node
// dmctl: dmsetup's commands with dmsetup's output and exit codes, plus loop
// device commands, on top of the library (no ioctls here).

import { spawnSync } from 'node:child_process';

import { DmError } from '../index.js';
import { ArgumentError, OPTIONS, parseArgs, type ParsedArgs } from './args.js';
import { CommandFailure, hasSwitch, optionValue, processContext, type Command } from './command.js';
import { parseDeviceNaming, readCommands } from './dm-read.js';
import { writeCommands } from './dm-write.js';
import { runDriverCommand } from './driver.js';
import { commandHelp, usage } from './help.js';
import { loopCommands } from './loop.js';
import { udevCommands } from './udev.js';

// Command groups. A group is a module exporting `readonly Command[]` (see
// ./command.ts); add its import above and its array here. Commands that
// parse their own options set `ownOptions`.
const COMMAND_GROUPS: readonly (readonly Command[])[] = [readCommands, writeCommands, loopCommands, udevCommands];

/** `dmctl driver ...`: the graphdriver commands, which parse their own options and pick their exit status. */
const driverCommand: Command = {
  name: 'driver',
  usage: 'COMMAND [OPTIONS] [ARGS]',
  summary: 'graphdriver commands; run dmctl driver --help for the list',
  minArgs: 0,
  maxArgs: -1,
  ownOptions: true,
  run: (context) => runDriverCommand(context.rawArgs),
};

const COMMANDS: readonly Command[] = [...COMMAND_GROUPS.flat(), driverCommand];

const helpCommand: Command = {
  name: 'help',
  usage: '[<command>]',
  summary: 'print this list, or the help of one command',
  minArgs: 0,
  maxArgs: 1,
  run(context) {
    const [name] = context.args;
    if (name === undefined) {
      context.out.write(usage(allCommands()));
      return;
    }
    const command = findCommand(name);
    if (!command) throw new CommandFailure(`Unknown command ${JSON.stringify(name)}; run dmctl help for the list.`, false);
    context.out.write(commandHelp(command));
  },
};

function allCommands(): readonly Command[] {
  return [helpCommand, ...COMMANDS];
}

function findCommand(name: string): Command | undefined {
  return allCommands().find((command) => command.name === name);
}

/** Index of the command word: the first word that is neither an option nor an option's value. */
function commandIndex(argv: readonly string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') return i + 1 < argv.length ? i + 1 : -1;
    if (!word.startsWith('-') || word === '-') return i;
    if (word.startsWith('--')) {
      const spec = OPTIONS.find((option) => option.long === word.slice(2));
      if (spec?.value) i++;
      continue;
    }
    const last = OPTIONS.find((option) => option.short === word[word.length - 1]);
    if (word.length === 2 && last?.value) i++;
  }
  return -1;
}

/** dmsetup's checks of option combinations, made before any command runs. */
function checkCombinations(parsed: ParsedArgs): string | undefined {
  if (hasSwitch(parsed, 'major') !== hasSwitch(parsed, 'minor')) return 'Please specify both major number and minor number.';
  if (hasSwitch(parsed, 'table') && hasSwitch(parsed, 'notable')) return '--table and --notable are incompatible.';
  if (hasSwitch(parsed, 'addnodeonresume') && hasSwitch(parsed, 'addnodeoncreate')) {
    return '--addnodeonresume and --addnodeoncreate are incompatible.';
  }
  return undefined;
}

function failUsage(message: string): number {
  process.stderr.write(`${message ? `${message}\n` : ''}${usage(allCommands())}`);
  return 1;
}

/** Runs `dmctl ARGV...` and returns the exit status. */
async function main(argv: string[]): Promise<number> {
  const index = commandIndex(argv);
  const ownOptions = index >= 0 && findCommand(argv[index])?.ownOptions === true;
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs(ownOptions ? argv.slice(0, index + 1) : argv);
  } catch (error) {
    if (!(error instanceof ArgumentError)) throw error;
    process.stderr.write(`${error.message}\nCouldn't process command line.\n`);
    return 1;
  }
  const problem = checkCombinations(parsed);
  if (problem) {
    process.stderr.write(`${problem}\nCouldn't process command line.\n`);
    return 1;
  }
  if (hasSwitch(parsed, 'verbose') && !/\bdm\b/.test(process.env.NODE_DEBUG ?? '')) {
    // Node reads NODE_DEBUG once at start-up, so run again with it set.
    const env = { ...process.env, NODE_DEBUG: [process.env.NODE_DEBUG, 'dm'].filter(Boolean).join(',') };
    return spawnSync(process.execPath, process.argv.slice(1), { env, stdio: 'inherit' }).status ?? 1;
  }

  let [name, ...args] = parsed.positionals;
  if (hasSwitch(parsed, 'help')) {
    args = name === undefined || name === 'help' ? args : [name];
    name = 'help';
  } else if (hasSwitch(parsed, 'version')) {
    name = 'version';
    args = [];
  }
  if (name === undefined) return failUsage('');
  const command = findCommand(name);
  if (!command) return failUsage('Unknown command.');
  if (args.length < command.minArgs || (command.maxArgs >= 0 && args.length > command.maxArgs)) {
    return failUsage('Incorrect number of arguments.');
  }

  const rawArgs = ownOptions ? argv.slice(index + 1) : args;
  const context = processContext(parsed, args, rawArgs);
  try {
    const deviceOptions = optionValue(parsed, 'options');
    const reportsColumns = hasSwitch(parsed, 'columns') || hasSwitch(parsed, 'tree') || name === 'splitname' || name === 'ls';
    if (deviceOptions !== undefined && !reportsColumns && !ownOptions) parseDeviceNaming(deviceOptions);
    const status = await command.run(context);
    return typeof status === 'number' ? status : 0;
  } catch (error) {
    return reportFailure(error);
  } finally {
    context.close();
  }
}

function reportFailure(error: unknown): number {
  if (error instanceof CommandFailure) {
    if (error.message) process.stderr.write(`${error.message}\n`);
    if (error.printCommandFailed) process.stderr.write('Command failed.\n');
    return 1;
  }
  if (error instanceof DmError) {
    process.stderr.write(`${error.message}\nCommand failed.\n`);
    return 1;
  }
  throw error;
}

process.exitCode = await main(process.argv.slice(2));
