// Command-line parsing the way dmsetup's getopt_long does it: options may
// come before and after the command, short options cluster (`-cv`), values
// follow as the next word or attached (`-odevname`, `--table=...`), long
// options may be shortened to any unique prefix, and `--` ends the options.

/** One option dmctl accepts. `long` is also the key in {@link ParsedArgs.switches}. */
export interface OptionSpec {
  long: string;
  short?: string;
  /** The option takes a value (`-o devname`, `--table LINES`). */
  value?: boolean;
}

/** Options as dmsetup 1.02.185 names them, plus dmctl's loop options. */
export const OPTIONS: readonly OptionSpec[] = [
  { long: 'addnodeoncreate' },
  { long: 'addnodeonresume' },
  { long: 'checks' },
  { long: 'columns', short: 'c' },
  { long: 'columns', short: 'C' },
  { long: 'deferred' },
  { long: 'exec', value: true },
  { long: 'force', short: 'f' },
  { long: 'gid', short: 'G', value: true },
  { long: 'help', short: 'h' },
  { long: 'inactive' },
  { long: 'major', short: 'j', value: true },
  { long: 'manglename', value: true },
  { long: 'minor', short: 'm', value: true },
  { long: 'mode', short: 'M', value: true },
  { long: 'nameprefixes' },
  { long: 'noflush' },
  { long: 'noheadings' },
  { long: 'nolockfs' },
  { long: 'noopencount' },
  { long: 'notable', short: 'n' },
  { long: 'noudevrules' },
  { long: 'noudevsync' },
  { long: 'offset', value: true },
  { long: 'options', short: 'o', value: true },
  { long: 'readahead', value: true },
  { long: 'readonly', short: 'r' },
  { long: 'retry' },
  { long: 'select', short: 'S', value: true },
  { long: 'separator', value: true },
  { long: 'setuuid' },
  { long: 'showkeys' },
  { long: 'sizelimit', value: true },
  { long: 'sort', short: 'O', value: true },
  { long: 'table', value: true },
  { long: 'target', value: true },
  { long: 'tree' },
  { long: 'udevcookie', value: true },
  { long: 'uid', short: 'U', value: true },
  { long: 'unbuffered' },
  { long: 'unquoted' },
  { long: 'uuid', short: 'u', value: true },
  { long: 'verbose', short: 'v' },
  { long: 'verifyudev' },
  { long: 'version' },
  { long: 'yes', short: 'y' },
];

/** The result of parsing: how often each option appeared, its last value, and the other words in order. */
export interface ParsedArgs {
  switches: Map<string, number>;
  values: Map<string, string>;
  positionals: string[];
}

/** A command line getopt would reject; the message is getopt's, with the program name first. */
export class ArgumentError extends Error {}

function findShort(letter: string, options: readonly OptionSpec[]): OptionSpec | undefined {
  return options.find((option) => option.short === letter);
}

function findLong(text: string, program: string, options: readonly OptionSpec[]): OptionSpec {
  const exact = options.find((option) => option.long === text);
  if (exact) return exact;
  const names = [...new Set(options.filter((option) => option.long.startsWith(text)).map((option) => option.long))];
  if (names.length === 1) return options.find((option) => option.long === names[0]) as OptionSpec;
  if (names.length === 0) throw new ArgumentError(`${program}: unrecognized option '--${text}'`);
  const possibilities = names.map((name) => `'--${name}'`).join(' ');
  throw new ArgumentError(`${program}: option '--${text}' is ambiguous; possibilities: ${possibilities}`);
}

/**
 * Parses `argv` (without the program path). Throws {@link ArgumentError}
 * with getopt's message for an unknown option or a missing value.
 */
export function parseArgs(argv: readonly string[], program = 'dmctl', options: readonly OptionSpec[] = OPTIONS): ParsedArgs {
  const parsed: ParsedArgs = { switches: new Map(), values: new Map(), positionals: [] };
  const record = (option: OptionSpec, value?: string): void => {
    parsed.switches.set(option.long, (parsed.switches.get(option.long) ?? 0) + 1);
    if (value !== undefined) parsed.values.set(option.long, value);
  };

  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') {
      parsed.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (word.startsWith('--')) {
      const equals = word.indexOf('=');
      const text = equals < 0 ? word.slice(2) : word.slice(2, equals);
      const option = findLong(text, program, options);
      if (!option.value) {
        if (equals >= 0) throw new ArgumentError(`${program}: option '--${option.long}' doesn't allow an argument`);
        record(option);
      } else if (equals >= 0) {
        record(option, word.slice(equals + 1));
      } else if (i + 1 < argv.length) {
        record(option, argv[++i]);
      } else {
        throw new ArgumentError(`${program}: option '--${option.long}' requires an argument`);
      }
      continue;
    }
    if (word.startsWith('-') && word.length > 1) {
      for (let j = 1; j < word.length; j++) {
        const letter = word[j];
        const option = findShort(letter, options);
        if (!option) throw new ArgumentError(`${program}: invalid option -- '${letter}'`);
        if (!option.value) {
          record(option);
          continue;
        }
        if (j + 1 < word.length) {
          record(option, word.slice(j + 1));
        } else if (i + 1 < argv.length) {
          record(option, argv[++i]);
        } else {
          throw new ArgumentError(`${program}: option requires an argument -- '${letter}'`);
        }
        break;
      }
      continue;
    }
    parsed.positionals.push(word);
  }
  return parsed;
}
