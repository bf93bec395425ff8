// `dmctl driver ...`: the graphdriver commands. Each run picks the driver as
// a container engine would (--driver, DOCKER_DRIVER, the root's prior state,
// priority) and leaves kernel state (pool, mounts) in place for the next run;
// `dmctl driver cleanup` tears it down.

import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';

import { DmError, newDriver, type Driver, type ProgressEvent } from '../index.js';

export const DRIVER_USAGE = `Usage: dmctl driver COMMAND [OPTIONS] [ARGS]

Commands:
  status                     print the chosen driver and its status
  ls                         list layers as ID and PARENT
  create ID [PARENT]         create layer ID from PARENT (or empty, or the base device)
  rm ID                      remove layer ID
  mount ID                   mount layer ID and print its path; it stays mounted
  umount ID                  unmount layer ID
  diff ID [-f FILE]          write the layer tar of ID against its parent to FILE or stdout
  apply ID [-f FILE]         unpack a layer tar from FILE or stdin into ID
  cleanup                    unmount every layer and release the driver (removes a loop-backed pool)

Options:
  --root DIR                 driver root folder (default /var/lib/dm-ioctl/graph)
  --driver NAME              driver to use; overrides DOCKER_DRIVER
  -o, --storage-opt KEY=VAL  storage option, such as dm.basesize=10G (repeatable)

Progress of base-device creation and of diff and apply is shown when stdout is a terminal.`;

export const DEFAULT_ROOT = '/var/lib/dm-ioctl/graph';

const OPTIONS = {
  root: { type: 'string' },
  driver: { type: 'string' },
  'storage-opt': { type: 'string', short: 'o', multiple: true },
  file: { type: 'string', short: 'f' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Prints progress on one terminal line; nothing when stdout is not a terminal. */
function progressPrinter(): ((event: ProgressEvent) => void) | undefined {
  if (!process.stdout.isTTY) return undefined;
  let last = 0;
  return (event) => {
    const now = Date.now();
    const finished = event.total !== undefined && event.done >= event.total;
    if (!finished && now - last < 100) return;
    last = now;
    const amount = event.unit === 'bytes' ? `${(event.done / 1048576).toFixed(1)} MiB` : `${event.done}${event.total ? `/${event.total}` : ''}`;
    const line = `${event.operation}: ${amount}${event.step ? ` ${event.step}` : ''}`.slice(0, (process.stdout.columns || 80) - 1);
    process.stdout.write(`\r\x1b[K${line}${finished ? '\n' : ''}`);
  };
}

class DriverUsageError extends Error {}

function need(args: string[], count: number, usage: string): void {
  if (args.length < count) throw new DriverUsageError(`Missing argument. Usage: dmctl driver ${usage}`);
}

async function runCommand(driver: Driver, command: string, args: string[], file: string | undefined): Promise<boolean> {
  const onProgress = progressPrinter();
  switch (command) {
    case 'status':
      console.log(`Storage Driver: ${driver.name}`);
      for (const [key, value] of driver.status()) console.log(` ${key}: ${value}`);
      return false;
    case 'ls':
      for (const id of driver.list()) console.log(`${id}\t${driver.parent(id) ?? '-'}`);
      return false;
    case 'create':
      need(args, 1, 'create ID [PARENT]');
      await driver.create(args[0], args[1]);
      return false;
    case 'rm':
      need(args, 1, 'rm ID');
      await driver.remove(args[0]);
      return false;
    case 'mount':
      need(args, 1, 'mount ID');
      console.log(await driver.get(args[0]));
      return false;
    case 'umount':
      need(args, 1, 'umount ID');
      await driver.put(args[0]);
      return false;
    case 'diff': {
      need(args, 1, 'diff ID [-f FILE]');
      if (file === undefined && process.stdout.isTTY) throw new DriverUsageError('Refusing to write a tar to a terminal; use -f FILE or a pipe');
      const tar = await driver.diff(args[0], { onProgress: file === undefined ? undefined : onProgress });
      await pipeline(tar, file === undefined ? process.stdout : fs.createWriteStream(file));
      return false;
    }
    case 'apply': {
      need(args, 1, 'apply ID [-f FILE]');
      const source = file === undefined ? process.stdin : fs.createReadStream(file);
      const size = await driver.applyDiff(args[0], source, { onProgress });
      if (onProgress) process.stdout.write('\n');
      console.log(`applied ${size} bytes to ${args[0]}`);
      return false;
    }
    case 'cleanup':
      return true;
    default:
      throw new DriverUsageError(`Unknown driver command ${JSON.stringify(command)}; run dmctl driver --help for the list`);
  }
}

/** Runs `dmctl driver ARGS`; returns the exit status. */
export async function runDriverCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    console.error(`dmctl driver: ${(error as Error).message}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;
  if (values.help || command === undefined) {
    console.log(DRIVER_USAGE);
    return values.help ? 0 : 2;
  }
  const root = values.root ?? DEFAULT_ROOT;
  try {
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    const driver = await newDriver(root, {
      name: values.driver,
      options: values['storage-opt'] ?? [],
      onProgress: progressPrinter(),
    });
    const teardown = await runCommand(driver, command, args, values.file);
    // NOTE: without cleanup the process exit releases the root's lock and
    // leaves pool and mounts for the next run, as a daemon would keep them.
    if (teardown) await driver.cleanup();
    return 0;
  } catch (error) {
    if (error instanceof DriverUsageError) {
      console.error(`dmctl driver: ${error.message}`);
      return 2;
    }
    if (error instanceof DmError) {
      console.error(`dmctl driver ${command}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}
