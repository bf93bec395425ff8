// The column report behind `info -c` and `splitname`, laid out as libdm's
// report code does: aligned columns (strings left, numbers right, each at
// least its heading's and its minimum width), or unaligned with
// `--separator` or `--noheadings` (":"), or NAME='value' pairs with
// `--nameprefixes`.

import type { DeviceInfo, DevNumber } from '../index.js';

/** Everything a report row can show about one device; device fields are absent in a splitname row. */
export interface ReportRow {
  info?: DeviceInfo;
  readAhead?: number;
  blockDeviceName?: () => string;
  deps?: () => DevNumber[];
  /** Block device names of `deps`. */
  depBlockNames?: () => string[];
  /** Names of the mapped devices this one uses, and of those that use it, with their numbers. */
  usedNames?: () => string[];
  users?: () => { name: string; dev: DevNumber }[];
  split: SplitName;
}

/** A device name split into its LVM parts, as `dmsetup splitname` shows it. */
export interface SplitName {
  subsystem: string;
  vgName: string;
  lvName: string;
  lvLayer: string;
}

interface Field {
  id: string;
  heading: string;
  width: number;
  numeric: boolean;
  section: 'name' | 'info' | 'deps' | 'split';
  value(row: ReportRow): string | undefined;
}

const devno = (dev: DevNumber): string => `${dev.major}:${dev.minor}`;
const info = (row: ReportRow): DeviceInfo | undefined => row.info;

function infoField(id: string, heading: string, width: number, numeric: boolean, value: (info: DeviceInfo, row: ReportRow) => string): Field {
  return { id, heading, width, numeric, section: 'info', value: (row) => (row.info ? value(row.info, row) : undefined) };
}

/** The fields dmsetup 1.02.185 reports, without the statistics fields. */
export const FIELDS: readonly Field[] = [
  { id: 'name', heading: 'Name', width: 16, numeric: false, section: 'name', value: (row) => info(row)?.name },
  { id: 'mangled_name', heading: 'MangledName', width: 16, numeric: false, section: 'name', value: (row) => info(row)?.name },
  { id: 'unmangled_name', heading: 'UnmangledName', width: 16, numeric: false, section: 'name', value: (row) => info(row)?.name },
  { id: 'uuid', heading: 'UUID', width: 32, numeric: false, section: 'name', value: (row) => info(row)?.uuid },
  { id: 'mangled_uuid', heading: 'MangledUUID', width: 32, numeric: false, section: 'name', value: (row) => info(row)?.uuid },
  { id: 'unmangled_uuid', heading: 'UnmangledUUID', width: 32, numeric: false, section: 'name', value: (row) => info(row)?.uuid },
  { id: 'read_ahead', heading: 'RAhead', width: 6, numeric: true, section: 'name', value: (row) => (row.info ? String(row.readAhead ?? 0) : undefined) },
  infoField('blkdevname', 'BlkDevName', 16, false, (_info, row) => row.blockDeviceName?.() ?? ''),
  infoField('attr', 'Stat', 4, false, (i) => `${i.liveTable ? 'L' : '-'}${i.inactiveTable ? 'I' : '-'}${i.suspended ? 's' : '-'}${i.readOnly ? 'r' : 'w'}`),
  infoField('tables_loaded', 'Tables', 6, false, (i) => {
    if (i.liveTable) return i.inactiveTable ? 'Both' : 'Live';
    return i.inactiveTable ? 'Inactive' : 'None';
  }),
  infoField('suspended', 'Suspended', 9, false, (i) => (i.suspended ? 'Suspended' : 'Active')),
  infoField('readonly', 'Read-only', 9, false, (i) => (i.readOnly ? 'Read-only' : 'Writeable')),
  infoField('devno', 'DevNo', 5, false, (i) => `${i.major}:${i.minor}`),
  infoField('major', 'Maj', 3, true, (i) => String(i.major)),
  infoField('minor', 'Min', 3, true, (i) => String(i.minor)),
  infoField('open', 'Open', 4, true, (i) => String(i.openCount)),
  infoField('segments', 'Targ', 4, true, (i) => String(i.targetCount)),
  infoField('events', 'Event', 6, true, (i) => String(i.eventNr)),
  { id: 'device_count', heading: '#Devs', width: 5, numeric: true, section: 'deps', value: (row) => (row.deps ? String(row.deps().length) : undefined) },
  { id: 'devs_used', heading: 'DevNamesUsed', width: 16, numeric: false, section: 'deps', value: (row) => row.usedNames?.().join(',') },
  { id: 'devnos_used', heading: 'DevNosUsed', width: 16, numeric: false, section: 'deps', value: (row) => row.deps?.().map(devno).join(',') },
  { id: 'blkdevs_used', heading: 'BlkDevNamesUsed', width: 16, numeric: false, section: 'deps', value: (row) => row.depBlockNames?.().join(',') },
  { id: 'device_ref_count', heading: '#Refs', width: 5, numeric: true, section: 'deps', value: (row) => (row.users ? String(row.users().length) : undefined) },
  { id: 'names_using_dev', heading: 'RefNames', width: 8, numeric: false, section: 'deps', value: (row) => row.users?.().map((user) => user.name).join(',') },
  { id: 'devnos_using_dev', heading: 'RefDevNos', width: 9, numeric: false, section: 'deps', value: (row) => row.users?.().map((user) => devno(user.dev)).join(',') },
  { id: 'subsystem', heading: 'Subsys', width: 6, numeric: false, section: 'split', value: (row) => row.split.subsystem },
  { id: 'vg_name', heading: 'VG', width: 4, numeric: false, section: 'split', value: (row) => row.split.vgName },
  { id: 'lv_name', heading: 'LV', width: 4, numeric: false, section: 'split', value: (row) => row.split.lvName },
  { id: 'lv_layer', heading: 'LVLayer', width: 7, numeric: false, section: 'split', value: (row) => row.split.lvLayer },
];

/** The columns of `info -c` without `-o`. */
export const DEFAULT_INFO_FIELDS = 'name,major,minor,attr,open,segments,events,uuid';
/** The columns of `splitname` without `-o`. */
export const DEFAULT_SPLITNAME_FIELDS = 'vg_name,lv_name,lv_layer';

const SECTION_ALL: Readonly<Record<string, Field['section']>> = {
  name_all: 'name',
  info_all: 'info',
  deps_all: 'deps',
  splitname_all: 'split',
};

const SECTION_TITLES: Readonly<Record<Field['section'], string>> = {
  name: 'Mapped Device Name Fields',
  info: 'Mapped Device Information Fields',
  deps: 'Mapped Device Relationship Information Fields',
  split: 'Mapped Device Name Components Fields',
};

/** A `-o` list that names `help` or `?`: the caller prints {@link fieldHelp} and stops. */
export class FieldHelpRequested extends Error {}

/** An unknown name in a `-o` list. */
export class UnknownFieldError extends Error {}

/**
 * Resolves a `-o` value against `defaults`: a leading `+` appends to the
 * defaults, `*_all` names a whole section.
 */
export function selectFields(option: string | undefined, defaults: string): Field[] {
  let list = defaults;
  if (option !== undefined) list = option.startsWith('+') ? `${defaults},${option.slice(1)}` : option;
  const fields: Field[] = [];
  for (const id of list.split(',').map((word) => word.trim())) {
    if (id === '') continue;
    if (id === 'help' || id === '?') throw new FieldHelpRequested();
    const section = SECTION_ALL[id];
    if (section) {
      fields.push(...FIELDS.filter((field) => field.section === section));
      continue;
    }
    const field = FIELDS.find((candidate) => candidate.id === id);
    if (!field) throw new UnknownFieldError(`Unrecognised field: ${id}`);
    fields.push(field);
  }
  return fields;
}

/** The list of fields `-o help` prints, one section after another. */
export function fieldHelp(): string {
  const lines: string[] = [];
  for (const [section, title] of Object.entries(SECTION_TITLES) as [Field['section'], string][]) {
    lines.push(title, '-'.repeat(title.length));
    const allId = Object.keys(SECTION_ALL).find((id) => SECTION_ALL[id] === section) as string;
    lines.push(`  ${allId.padEnd(22)}- Every field of this section.`);
    for (const field of FIELDS.filter((candidate) => candidate.section === section)) {
      lines.push(`  ${field.id.padEnd(22)}- Column "${field.heading}".`);
    }
    lines.push(' ');
  }
  return `${lines.join('\n')}\n`;
}

/** How a report is laid out, from the command line. */
export interface ReportLayout {
  headings: boolean;
  aligned: boolean;
  separator: string;
  namePrefixes: boolean;
}

/** The layout dmsetup picks for `--noheadings`, `--separator` and `--nameprefixes`. */
export function reportLayout(options: { noHeadings?: boolean; separator?: string; namePrefixes?: boolean }): ReportLayout {
  const layout: ReportLayout = { headings: true, aligned: true, separator: ' ', namePrefixes: false };
  if (options.noHeadings) Object.assign(layout, { separator: ':', aligned: false, headings: false });
  if (options.namePrefixes) Object.assign(layout, { aligned: false, namePrefixes: true });
  if (options.separator !== undefined) Object.assign(layout, { separator: options.separator, aligned: false });
  return layout;
}

/** Thrown when a row has no data for a field, as libdm reports it. */
export class MissingFieldDataError extends Error {}

/** Formats `rows` under `fields`; an empty report prints nothing. */
export function formatReport(fields: readonly Field[], rows: readonly ReportRow[], layout: ReportLayout): string {
  if (rows.length === 0) return '';
  const cells = rows.map((row) =>
    fields.map((field) => {
      const value = field.value(row);
      if (value === undefined) throw new MissingFieldDataError(`_do_report_object: no data assigned to field ${field.id}`);
      return value;
    }),
  );
  const widths = fields.map((field, column) => Math.max(field.width, field.heading.length, ...cells.map((line) => line[column].length)));
  const lines: string[] = [];
  if (layout.headings) {
    const headings = fields.map((field, column) => (layout.aligned ? field.heading.padEnd(widths[column]) : field.heading));
    lines.push(headings.join(layout.separator));
  }
  for (const line of cells) {
    const texts = line.map((value, column) => {
      const field = fields[column];
      if (layout.namePrefixes) return `DM_${field.id.toUpperCase()}='${value}'`;
      if (!layout.aligned) return value;
      return field.numeric ? value.padStart(widths[column]) : value.padEnd(widths[column]);
    });
    lines.push(texts.join(layout.separator));
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Splits `name` into LVM volume group, logical volume and layer where a
 * single `-` separates the parts and `--` stands for a `-` inside one.
 */
export function splitLvmName(name: string): { vgName: string; lvName: string; lvLayer: string } {
  const parts: string[] = [];
  let rest = name;
  for (let part = 0; part < 2; part++) {
    let out = '';
    let i = 0;
    let ended = false;
    while (i < rest.length) {
      if (i + 1 < rest.length && rest[i] === '-') {
        if (rest[i + 1] !== '-') {
          ended = true;
          break;
        }
        i++;
      }
      out += rest[i];
      i++;
    }
    parts.push(out);
    rest = ended ? rest.slice(i + 1) : '';
  }
  return { vgName: parts[0], lvName: parts[1], lvLayer: rest };
}

/**
 * Splits a device name by its subsystem: only `LVM` names have parts. The
 * subsystem is `subsystem` itself, or for a device the uuid up to its first
 * `separator`.
 */
export function splitName(subsystemSource: string, name: string, separator?: string): SplitName {
  const cut = separator === undefined ? -1 : subsystemSource.indexOf(separator);
  const subsystem = cut < 0 ? subsystemSource : subsystemSource.slice(0, cut);
  if (subsystem !== 'LVM') return { subsystem, vgName: '', lvName: '', lvLayer: '' };
  return { subsystem, ...splitLvmName(name) };
}
