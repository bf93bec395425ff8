// Usage text: the command list in dmsetup's layout, and per-command help.

import type { Command } from './command.js';

const GLOBAL_OPTIONS = `        [--version] [-h|--help]
        [-v|--verbose] [-f|--force] [--manglename {none|hex|auto}]
        [-r|--readonly] [--noflush] [--nolockfs] [--inactive]
        [-c|-C|--columns] [-o <fields>] [--noheadings] [--separator <separator>]
        [--nameprefixes] [--noudevsync] [--retry] [--deferred]`;

/** The usage dmctl prints for `help`, a missing command and argument errors. */
export function usage(commands: readonly Command[]): string {
  const lines = commands.filter((command) => !command.hidden).map((command) => `\t${command.name} ${command.usage}`);
  return (
    'Usage:\n\n' +
    `dmctl\n${GLOBAL_OPTIONS}\n\n` +
    `${lines.join('\n')}\n\n` +
    '<device> may be device name or (if only one) -u <uuid> or -j <major> -m <minor>\n' +
    "<mangling_mode> is one of 'none', 'auto' and 'hex'.\n" +
    "<fields> are comma-separated.  Use 'info -c -o help' for the list.\n" +
    'Table_file contents may be supplied on stdin.\n' +
    'Options are: devno, devname, blkdevname.\n' +
    'Tree specific options are: ascii, utf, vt100; compact, inverted, notrunc;\n' +
    '                           blkdevname, [no]device, active, open, rw and uuid.\n' +
    'Run dmctl help COMMAND for one command. -v|--verbose prints each ioctl on stderr (NODE_DEBUG=dm).\n\n'
  );
}

/** The help of one command: its usage line, what it does and its options. */
export function commandHelp(command: Command): string {
  const details = command.details ? `\n${command.details}\n` : '';
  return `Usage: dmctl ${command.name} ${command.usage}\n\n${command.summary[0].toUpperCase()}${command.summary.slice(1)}.\n${details}`;
}
