// Runs one script of dmsetup commands through Debian's dmsetup and through
// dmctl on fresh devices and compares stdout, stderr and exit status step by
// step. Every difference must be listed in KNOWN_DIFFERENCES with its reason.
// Then each tool reads devices the other one made.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

import { attachLoop, detachLoop } from '../../src/loop/loop.js';
import { SCRIPT, splitLine } from './differential-script.js';
import { cleanUp, PREFIX, sparseFile, WORK_DIR } from './helpers.js';

const DMSETUP = '/sbin/dmsetup';
const DMCTL = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/dmctl.js');
const ENV = { PATH: process.env.PATH ?? '/sbin:/bin:/usr/sbin:/usr/bin', DM_DISABLE_UDEV: '1' };

type Stream = 'stdout' | 'stderr' | 'status';

/**
 * Differences between dmsetup 1.02.185 and dmctl, by step number, with the
 * reason each one is accepted.
 */
const KNOWN_DIFFERENCES: Readonly<Record<string, { streams: Stream[]; reason: string }>> = {
  '001': { streams: ['stdout'], reason: 'The library version line names dm-ioctl and its version instead of libdevmapper.' },
  '044': {
    streams: ['stderr'],
    reason: 'The field list before "Unrecognised field" has dmctl\'s own descriptions and no statistics fields; the last line and the status match.',
  },
  '117': {
    streams: ['stdout'],
    reason: 'The library trims the trailing space the thin-pool target leaves at the end of its status line.',
  },
  '119': {
    streams: ['stdout'],
    reason: 'The library trims the trailing space the thin-pool target leaves at the end of its table line.',
  },
};

interface Outcome {
  stdout: string;
  stderr: string;
  status: number;
}

function runTool(tool: 'dmsetup' | 'dmctl', args: string[], stdin?: string): Outcome {
  const [command, prefix] = tool === 'dmsetup' ? [DMSETUP, ['--noudevsync']] : [process.execPath, [DMCTL]];
  const result = spawnSync(command, [...prefix, ...args], { env: ENV, input: stdin ?? '', encoding: 'utf8', timeout: 60_000 });
  return { stdout: result.stdout, stderr: normalizeStderr(result.stderr), status: result.status ?? -1 };
}

/**
 * Makes stderr comparable: getopt names the program ("/sbin/dmsetup:" or
 * "dmctl:"), and the usage text after "Usage:" lists each tool's own commands.
 */
function normalizeStderr(text: string): string {
  const usage = text.indexOf('Usage:\n');
  const kept = usage < 0 ? text : `${text.slice(0, usage)}Usage: (the tool's command list)\n`;
  return kept.replace(/^(\/sbin\/dmsetup|dmctl): /gm, 'PROGRAM: ');
}

interface Loops {
  paths: string[];
}

function attachRunLoops(): Loops {
  const files = [sparseFile('diff-linear.img', 16 << 20), sparseFile('diff-data.img', 64 << 20), sparseFile('diff-meta.img', 8 << 20)];
  const paths = files.map((file) => {
    const loop = attachLoop(file, { autoclear: false });
    loop.close();
    return loop.path;
  });
  return { paths };
}

function detachRunLoops(loops: Loops): void {
  for (const loopPath of loops.paths) {
    try {
      detachLoop(loopPath);
    } catch {
      // cleanUp() detaches what is left.
    }
  }
}

async function runScript(tool: 'dmsetup' | 'dmctl'): Promise<Outcome[]> {
  await cleanUp();
  const loops = attachRunLoops();
  const variables = { P: `${PREFIX}d`, L0: loops.paths[0], L1: loops.paths[1], L2: loops.paths[2], W: WORK_DIR };
  try {
    return SCRIPT.map((step) => runTool(tool, splitLine(step.line, variables), step.stdin));
  } finally {
    await cleanUp();
    detachRunLoops(loops);
  }
}

function formatDifference(stream: Stream, expected: Outcome, actual: Outcome): string {
  return `${stream}:\n--- dmsetup\n${String(expected[stream])}\n--- dmctl\n${String(actual[stream])}`;
}

describe('dmctl against dmsetup', function () {
  this.timeout(900_000);
  let expected: Outcome[] = [];
  let actual: Outcome[] = [];

  before(async function () {
    if (!fs.existsSync(DMSETUP)) this.skip();
    expected = await runScript('dmsetup');
    actual = await runScript('dmctl');
  });

  it('script has at least 100 operations', function () {
    expect(SCRIPT.length).to.be.at.least(100);
  });

  it('script output matches step by step', function () {
    const unexplained: string[] = [];
    const unused = new Set(Object.keys(KNOWN_DIFFERENCES));
    SCRIPT.forEach((step, index) => {
      const number = step.id.slice(0, 3);
      const known = KNOWN_DIFFERENCES[number];
      for (const stream of ['stdout', 'stderr', 'status'] as const) {
        if (expected[index][stream] === actual[index][stream]) continue;
        if (known?.streams.includes(stream)) {
          unused.delete(number);
          continue;
        }
        unexplained.push(`step ${step.id}\n${formatDifference(stream, expected[index], actual[index])}`);
      }
    });
    
    expect(unexplained, unexplained.join('\n\n')).to.deep.equal([]);
    expect([...unused], 'listed differences that no longer occur').to.deep.equal([]);
  });

  describe('reads of the other tool’s devices', function () {
    const READS = ['ls', 'ls --tree', 'ls -o blkdevname', 'info', 'info -c', 'table', 'status', 'deps', 'deps -o devname'];
    let loops: Loops;

    beforeEach(async function () {
      await cleanUp();
      loops = attachRunLoops();
    });

    afterEach(async function () {
      await cleanUp();
      detachRunLoops(loops);
    });

    for (const maker of ['dmsetup', 'dmctl'] as const) {
      it(`reads match on ${maker} devices`, function () {
        const name = `${PREFIX}x`;
        runTool(maker, ['create', `${name}-base`, '-u', `${name}-uuid`, '--table', `0 8192 linear ${loops.paths[0]} 0`]);
        runTool(maker, ['create', `${name}-top`, '--table', `0 4096 linear /dev/mapper/${name}-base 0`]);
        runTool(maker, ['create', `${name}-ro`, '-r', '--table', '0 100 zero']);
        for (const read of READS) {
          const args = read.split(' ');
          const byDmsetup = runTool('dmsetup', args);
          const byDmctl = runTool('dmctl', args);
          expect(byDmctl.stdout, `${read}: stdout`).to.equal(byDmsetup.stdout);
          expect(byDmctl.status, `${read}: status`).to.equal(byDmsetup.status);
        }
      });
    }
  });
});
