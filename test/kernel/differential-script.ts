// The script the differential test runs once through Debian's dmsetup and
// once through dmctl. Each line is one command line; `$P` is the device name
// prefix, `$L0`..`$L2` are loop devices attached for the run, `$W` the work
// folder. Lines are split on spaces; single quotes group words.

/** One operation: the tool's arguments, optional stdin, and an id that known differences refer to. */
export interface ScriptStep {
  id: string;
  line: string;
  stdin?: string;
}

const LINES: readonly (string | [string, string])[] = [
  // Empty state and kernel facts.
  'version',
  'targets',
  'ls',
  'info',
  'table',
  // Creates: inline table, uuid, read-only, stdin, no table, failures.
  "create $P-a --table '0 8192 linear $L0 0'",
  "create $P-b -u $P-uuid-b --table '0 4096 zero'",
  "create $P-c -r --table '0 100 error'",
  ['create $P-d', '0 2048 zero\n'],
  ['create $P-e', '# a comment line\n\n0 1024 zero\n1024 1024 error\n'],
  'create $P-f --notable',
  "create $P-a --table '0 8 zero'",
  "create $P-g -u $P-uuid-b --table '0 8 zero'",
  "create $P-h --table '0 8 no-such-target'",
  "create $P-i --table 'zero zero zero'",
  "create $P-j --table '0 8 linear /dev/no-such-device 0'",
  'create',
  "create $P-k --table '0 8 zero' --notable",
  // Listing.
  'ls',
  'ls -o devname',
  'ls -o blkdevname',
  'ls --target zero',
  'ls --target linear',
  'ls --tree',
  'ls --tree -o ascii,uuid,open,rw,active',
  'ls --tree -o inverted',
  'ls --tree -o blkdevname',
  'ls --tree -o nodevice',
  'ls --tree -o bogus',
  'ls -o bogus',
  // Info in both layouts.
  'info',
  'info $P-a',
  'info $P-c $P-f',
  'info $P-nope',
  'info -c',
  'info -c $P-a $P-b',
  'info -c $P-a $P-nope $P-b',
  'info -c -o name,attr,tables_loaded,suspended,readonly,devno,major,minor,open,segments,events,uuid',
  'info -c -o name,blkdevname,read_ahead,device_count,devnos_used,blkdevs_used',
  'info -c -o +subsystem,vg_name,lv_name,lv_layer',
  'info -c --noheadings',
  'info -c --separator ,',
  'info -c --noheadings -o name,uuid --separator /',
  'info -c -o no_such_field',
  'info -u $P-uuid-b',
  'info -c -u $P-uuid-b',
  'info -u $P-uuid-nope',
  // Tables, status and deps.
  'table',
  'table $P-a',
  'table $P-e $P-a',
  'table --target error',
  'table $P-nope',
  'table -u $P-uuid-b',
  'status',
  'status $P-e',
  'status $P-nope',
  'deps',
  'deps $P-a',
  'deps -o devname $P-a',
  'deps -o blkdevname $P-a',
  'deps $P-nope',
  // A device stacked on another.
  "create $P-top --table '0 4096 linear /dev/mapper/$P-a 0'",
  'ls --tree',
  'deps -o devname $P-top',
  'info -c -o name,open,devs_used,device_ref_count,names_using_dev,devnos_using_dev',
  'remove $P-a',
  'rename $P-b $P-a',
  'rename $P-b $P-b2',
  'rename $P-nope $P-x',
  'rename $P-b2',
  'rename $P-d --setuuid $P-uuid-d',
  'rename $P-d --setuuid $P-uuid-d2',
  'info -c $P-b2 $P-d',
  // Suspend, load, resume, clear.
  'suspend $P-e',
  'info $P-e',
  'info -c $P-e',
  'suspend --noflush --nolockfs $P-d',
  'resume $P-e $P-d',
  "load $P-e --table '0 512 zero'",
  'info $P-e',
  'table --inactive $P-e',
  'clear $P-e',
  'info -c -o name,tables_loaded $P-e',
  "reload $P-e --table '0 512 error'",
  'resume $P-e',
  'table $P-e',
  'info -c -o name,events $P-e',
  "load $P-f --table '0 256 zero'",
  'info -c -o name,attr $P-f',
  'resume $P-f',
  'table $P-f',
  'load',
  "load $P-nope --table '0 8 zero'",
  'suspend $P-nope',
  'resume',
  'clear $P-nope',
  // Messages and events.
  'message $P-d 0 hello',
  'message $P-d x hello',
  'message $P-nope 0 hello',
  'message $P-d',
  'wait $P-d 99',
  'wait $P-nope 1',
  'wait',
  // A thin pool: messages, thin volumes, a snapshot.
  "create $P-pool --table '0 131072 thin-pool $L2 $L1 128 0 1 skip_block_zeroing'",
  'message $P-pool 0 create_thin 0',
  'message $P-pool 0 create_thin 0',
  'message $P-pool 0 create_thin 1',
  "create $P-thin0 --table '0 8192 thin /dev/mapper/$P-pool 0'",
  'suspend $P-thin0',
  'message $P-pool 0 create_snap 2 0',
  'resume $P-thin0',
  "create $P-snap --table '0 8192 thin /dev/mapper/$P-pool 2'",
  'message $P-pool 0 delete 7',
  'message $P-pool 0 set_transaction_id 0 5',
  'message $P-pool 0 set_transaction_id 0 6',
  'message $P-pool 0 bogus',
  'status $P-pool',
  'status --target thin',
  'table --target thin-pool',
  'ls --tree',
  'deps -o blkdevname $P-pool',
  'remove $P-pool',
  'remove $P-snap $P-thin0',
  'message $P-pool 0 delete 2',
  'message $P-pool 0 delete 1',
  'remove $P-pool',
  // Names, splitname, mangle.
  "create '$P-sp ace' --table '0 8 zero'",
  'ls',
  'info -c -o name',
  'mangle',
  'splitname vg-lv',
  'splitname vg-lv-layer',
  'splitname vg--x-lv--y',
  'splitname a-b XYZ',
  'splitname --noheadings a-b',
  'splitname -o vg_name,subsystem a-b',
  // Argument errors.
  'no-such-command',
  'message $P-d',
  'rename a b c',
  'info -j 1',
  '--no-such-option info',
  'info -o',
  // Removes.
  'remove $P-nope',
  'remove $P-top',
  'remove --retry $P-a',
  'remove --deferred $P-b2',
  'remove -f $P-c',
  'remove -u $P-uuid-d',
  'remove -u $P-uuid-nope',
  'remove_all',
  'ls',
  'info',
];

/** The differential script, one step per line. */
export const SCRIPT: readonly ScriptStep[] = LINES.map((entry, index) => {
  const [line, stdin] = typeof entry === 'string' ? [entry, undefined] : entry;
  return { id: `${String(index + 1).padStart(3, '0')} ${line}`, line, stdin };
});

/** Splits a script line into words: spaces separate, single quotes group. */
export function splitLine(line: string, variables: Readonly<Record<string, string>>): string[] {
  const expanded = line.replace(/\$([A-Z][A-Z0-9]*)/g, (match, name: string) => variables[name] ?? match);
  const words: string[] = [];
  for (const match of expanded.matchAll(/'([^']*)'|(\S+)/g)) words.push(match[1] ?? match[2]);
  return words;
}
