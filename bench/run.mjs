#!/usr/bin/env node
// `npm run bench`: compiles the C peer (bench/c/dmbench.c) with gcc, runs
// bench/inside.mjs in the guest next to it, prints the library-to-C ratios
// and writes them to BENCHMARKS.md. The guest emulates its CPU (QEMU TCG),
// so only the ratios, measured in one run, carry over to real hardware.
//
// Environment: DM_BENCH_CYCLE_DEVICES (default 500), DM_BENCH_DMSETUP_DEVICES
// (default 100) and DM_BENCH_LIST_COUNTS (default 1000,5000,10000) shrink a
// run for a quick check; such a run does not write BENCHMARKS.md.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPOSITORY_ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const OUTPUT_DIR = path.join(REPOSITORY_ROOT, 'dist', 'bench');
const REPORT = path.join(REPOSITORY_ROOT, 'BENCHMARKS.md');
// 10,000 dm devices need more than the guest's default 1 GiB.
const GUEST_MEMORY_MIB = 3072;
const GUEST_TIMEOUT_SECONDS = 3000;
const RESULT_PREFIX = 'bench-result: ';

/** Targets of the library-to-C ratios. */
const TARGET = { info: 1.3, cycle: 1.1, list: 1.5 };

/** The commit the measured code comes from, marked when the tree has uncommitted changes. */
function codeVersion() {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPOSITORY_ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPOSITORY_ROOT, encoding: 'utf8' }).trim();
    return dirty ? `${commit} with uncommitted changes` : commit;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

function build() {
  fs.mkdirSync(OUTPUT_DIR, { recursive: true });
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-o', path.join(OUTPUT_DIR, 'dmbench'), path.join(REPOSITORY_ROOT, 'bench', 'c', 'dmbench.c')], {
    stdio: 'inherit',
  });
  fs.copyFileSync(path.join(REPOSITORY_ROOT, 'bench', 'inside.mjs'), path.join(OUTPUT_DIR, 'inside.mjs'));
}

/** Runs the measurements in the guest and returns their result object. */
function runInGuest() {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['scripts/guest.mjs', '--mem', String(GUEST_MEMORY_MIB), '--timeout', String(GUEST_TIMEOUT_SECONDS), '--', 'node', 'dist/bench/inside.mjs'],
      { cwd: REPOSITORY_ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let result;
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith(RESULT_PREFIX)) result = JSON.parse(line.slice(RESULT_PREFIX.length));
      else process.stdout.write(`${line}\n`);
    });
    child.on('exit', (code) => {
      if (code === 0 && result) resolve(result);
      else reject(new Error(`the benchmark failed in the guest (exit status ${code}); see the output above`));
    });
  });
}

const ratio = (a, b) => a / b;
const fixed = (n, digits = 2) => n.toFixed(digits);
const micro = (ns) => fixed(ns / 1e3);
const milli = (ns) => fixed(ns / 1e6);

function verdict(value, target) {
  return value <= target ? `met (target ≤ ${target}×)` : `missed (target ≤ ${target}×)`;
}

/** Returns the report lines: one table per figure, with the ratios. */
function report(result) {
  const { info, cycle, list } = result;
  const infoRatio = ratio(info.library, info.c);
  const cycleRatio = ratio(cycle.library, cycle.c);
  const first = list[0];
  const lines = [
    '## (a) Info round trip (DM_DEV_STATUS)',
    '',
    `${info.iterations} calls on one device after a warm-up, in ${info.rounds} rounds interleaved with the other peers; each peer's fastest round counts.`,
    '',
    '| peer | µs a call | ratio to C |',
    '| --- | --- | --- |',
    `| C (dmbench info) | ${micro(info.c)} | 1.00 |`,
    `| library: \`dm.info(name)\` | ${micro(info.library)} | ${fixed(infoRatio)} |`,
    `| candidate: a copy of \`info()\` with the changes proposed for src/ (checked names cached, mangling fast path, template header, no BigInt) | ${micro(info.candidate)} | ${fixed(ratio(info.candidate, info.c))} |`,
    `| koffi ioctl, header encoded each call | ${micro(info.koffiWithEncode)} | ${fixed(ratio(info.koffiWithEncode, info.c))} |`,
    `| koffi ioctl, header copied from a template | ${micro(info.templateKoffi)} | ${fixed(ratio(info.templateKoffi, info.c))} |`,
    '',
    `Library to C: **${fixed(infoRatio)}×**, ${verdict(infoRatio, TARGET.info)}.`,
    '',
    'The library\'s steps alone, each in a loop (µs a call): ' +
      Object.entries(info.steps)
        .map(([step, ns]) => `${step} ${micro(ns)}`)
        .join(', ') +
      '.',
    '',
    '## (b) Create, load, resume, remove',
    '',
    `${cycle.devices} devices in turn for the library and for C, in ${cycle.rounds} interleaved rounds whose fastest counts, each device created, loaded with one 8-sector zero target, resumed and removed; dmsetup ran one process per step for ${cycle.dmsetupDevices} devices.`,
    '',
    '| peer | ms a device | ratio to C |',
    '| --- | --- | --- |',
    `| C (dmbench cycle) | ${milli(cycle.c)} | 1.00 |`,
    `| library | ${milli(cycle.library)} | ${fixed(cycleRatio)} |`,
    `| dmsetup, one process per step | ${milli(cycle.dmsetup)} | ${fixed(ratio(cycle.dmsetup, cycle.c))} |`,
    '',
    `Library to C: **${fixed(cycleRatio)}×**, ${verdict(cycleRatio, TARGET.cycle)}. The dmsetup ratio is for information.`,
    '',
    '## (c) Listing devices (DM_LIST_DEVICES)',
    '',
    `Devices without tables; one more device (the info device) is on each list. The library and C each list in ${list[0].rounds} interleaved rounds whose fastest counts. Each list starts from a 16 KiB buffer that is doubled while the kernel reports it full, in the library and in C alike; dmsetup ls is one process per run, ${list[0].dmsetupLsRuns} runs.`,
    '',
    '| devices | library µs a device | C µs a device | ratio to C | candidate µs a device | candidate to C | dmsetup ls µs a device | dmsetup ls to C | library per device vs the first count |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const row of list) {
    lines.push(
      `| ${row.devices} | ${micro(row.library / row.devices)} | ${micro(row.c / row.devices)} | ${fixed(ratio(row.library, row.c))} | ${micro(row.candidate / row.devices)} | ${fixed(ratio(row.candidate, row.c))} | ${micro(row.dmsetupLs / row.devices)} | ${fixed(ratio(row.dmsetupLs, row.c))} | ${fixed(ratio(row.library / row.devices, first.library / first.devices))} |`,
    );
  }
  const worstList = Math.max(...list.map((row) => ratio(row.library, row.c)));
  const growth = ratio(list.at(-1).library / list.at(-1).devices, first.library / first.devices);
  lines.push(
    '',
    `Largest library-to-C ratio: **${fixed(worstList)}×**, ${verdict(worstList, TARGET.list)}. Time per device at ${list.at(-1).devices} devices is ${fixed(growth)}× that at ${first.devices}.`,
    '',
    'The candidate is a copy of `listDevices()` in bench/inside.mjs with the changes proposed for src/: it starts from the buffer size that fitted last time instead of 16 KiB, and decodes each record once, from the position of the name\'s NUL, into its final object.',
  );
  return { lines, infoRatio, cycleRatio, worstList, growth };
}

function writeReport(result, lines) {
  const header = [
    '# Benchmarks',
    '',
    'Measured by `npm run bench` (bench/run.mjs) in one run of the project\'s QEMU guest, which emulates its CPU (TCG): absolute times are several times slower than real hardware, so only the ratios mean anything.',
    '',
    `- Kernel ${result.kernel}, device-mapper interface ${result.interface}, Node.js ${result.node}, ${result.cpus} virtual CPUs.`,
    `- Code measured: commit ${codeVersion()}, on ${new Date().toISOString().slice(0, 10)}.`,
    '- The C peer is bench/c/dmbench.c, compiled with `gcc -O2`: it fills the same headers and makes the same ioctls as the library, with no udev and no node handling on either side (the library runs without `nodeSync`).',
    '- dmsetup is Debian\'s 1.02.185, run with `DM_DISABLE_UDEV=1`, so it also makes and removes /dev/mapper nodes.',
    '- Timing: `process.hrtime.bigint()` around each loop in Node.js, `clock_gettime(CLOCK_MONOTONIC)` in C.',
    '',
  ];
  fs.writeFileSync(REPORT, `${[...header, ...lines].join('\n')}\n`);
}

build();
const result = await runInGuest();
const { lines, infoRatio, cycleRatio, worstList, growth } = report(result);
process.stdout.write(`\n${lines.join('\n')}\n\n`);
process.stdout.write(
  `ratios: info ${fixed(infoRatio)}x (target ${TARGET.info}), cycle ${fixed(cycleRatio)}x (target ${TARGET.cycle}), list ${fixed(worstList)}x (target ${TARGET.list}), list growth ${fixed(growth)}x\n`,
);
const defaults = !process.env.DM_BENCH_CYCLE_DEVICES && !process.env.DM_BENCH_DMSETUP_DEVICES && !process.env.DM_BENCH_LIST_COUNTS;
if (defaults) {
  writeReport(result, lines);
  process.stdout.write(`wrote ${path.relative(process.cwd(), REPORT)}\n`);
}
