// A streaming tar writer and reader. The writer turns entries into an async
// sequence of Buffers; the reader turns any async sequence of Buffers into
// entries whose data is read in chunks, so a layer never sits in memory whole.

import { GraphDriverErrorCode, driverError } from '../errors.js';
import {
  BLOCK_SIZE,
  decodeBlock,
  encodeHeader,
  finishHeader,
  isZeroBlock,
  paddingSize,
  parsePaxRecords,
  TypeFlag,
  type TarHeader,
} from './header.js';

/** Largest pax or GNU long-name record the reader accepts (1 MiB), so a corrupt size cannot exhaust memory. */
export const MAX_META_ENTRY_SIZE = 1024 * 1024;
/** Size of the data chunks the reader hands out. */
export const READ_CHUNK_SIZE = 64 * 1024;

export interface TarEntryInput {
  header: TarHeader;
  /** The data of a regular file: exactly `header.size` bytes. */
  data?: () => AsyncIterable<Buffer>;
}

function invalid(message: string): never {
  throw driverError(GraphDriverErrorCode.INVALID_ARCHIVE, message);
}

/** Encodes entries as a tar archive, ending with two zero blocks. */
export async function* writeTar(entries: AsyncIterable<TarEntryInput> | Iterable<TarEntryInput>): AsyncGenerator<Buffer> {
  for await (const entry of entries) {
    const size = entry.header.type === 'file' ? entry.header.size : 0;
    yield encodeHeader({ ...entry.header, size });
    if (size === 0) continue;
    if (!entry.data) invalid(`Tar entry ${JSON.stringify(entry.header.name)} has size ${size} but no data`);
    let written = 0;
    for await (const chunk of entry.data()) {
      const take = Math.min(chunk.length, size - written);
      if (take > 0) yield chunk.subarray(0, take);
      written += take;
    }
    if (written !== size) {
      invalid(`Tar entry ${JSON.stringify(entry.header.name)} changed while archived: expected ${size} bytes, read ${written}`);
    }
    const pad = paddingSize(size);
    if (pad > 0) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(2 * BLOCK_SIZE);
}

/** What the reader takes: a stream, an async generator or an array of chunks. */
export type TarSource = AsyncIterable<Buffer | Uint8Array | string> | Iterable<Buffer | Uint8Array>;

function toAsync<T>(iterator: Iterator<T>): AsyncIterator<T> {
  return { next: async () => iterator.next() };
}

/** Reads exact byte counts from an async sequence of chunks. */
class ByteReader {
  readonly #iterator: AsyncIterator<Buffer>;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #ended = false;
  /** Bytes consumed so far, for error messages. */
  position = 0;

  constructor(source: TarSource) {
    const iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : toAsync(source[Symbol.iterator]());
    this.#iterator = {
      next: async () => {
        const result = await iterator.next();
        if (result.done) return result;
        const value = result.value;
        return { done: false, value: Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array) };
      },
    };
  }

  async #fill(bytes: number): Promise<boolean> {
    while (this.#pendingBytes < bytes && !this.#ended) {
      const { done, value } = await this.#iterator.next();
      if (done) this.#ended = true;
      else if (value.length > 0) {
        this.#pending.push(value);
        this.#pendingBytes += value.length;
      }
    }
    return this.#pendingBytes >= bytes;
  }

  /** Returns up to `max` bytes (at least 1) or undefined at the end. */
  async readSome(max: number): Promise<Buffer | undefined> {
    if (!(await this.#fill(1))) return undefined;
    const first = this.#pending[0];
    const take = Math.min(max, first.length);
    const chunk = first.subarray(0, take);
    if (take === first.length) this.#pending.shift();
    else this.#pending[0] = first.subarray(take);
    this.#pendingBytes -= take;
    this.position += take;
    return chunk;
  }

  /** Returns exactly `bytes` bytes, or undefined when the stream ends first. */
  async readExact(bytes: number): Promise<Buffer | undefined> {
    if (!(await this.#fill(bytes))) return undefined;
    const parts: Buffer[] = [];
    let left = bytes;
    while (left > 0) {
      const chunk = (await this.readSome(left)) as Buffer;
      parts.push(chunk);
      left -= chunk.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  async skip(bytes: number): Promise<boolean> {
    let left = bytes;
    while (left > 0) {
      const chunk = await this.readSome(Math.min(left, READ_CHUNK_SIZE));
      if (!chunk) return false;
      left -= chunk.length;
    }
    return true;
  }
}

export interface TarEntry {
  header: TarHeader;
  /** The entry's data in chunks. Read it before asking for the next entry, or it is skipped. */
  data: AsyncIterable<Buffer>;
}

/**
 * Decodes a tar archive. Pax ('x') and GNU long-name ('L', 'K') records are
 * folded into the entry they precede; global pax headers ('g') are applied
 * to every later entry.
 */
export async function* readTar(source: TarSource): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(source);
  const global = new Map<string, Buffer>();
  let pax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const offset = reader.position;
    const block = await reader.readExact(BLOCK_SIZE);
    if (!block) {
      if (offset === 0) invalid('Invalid tar archive: the stream is empty');
      // A stream that ends without the zero blocks is accepted, as GNU tar does.
      return;
    }
    if (isZeroBlock(block)) return;
    const raw = decodeBlock(block);
    const meta = raw.typeflag === TypeFlag.XHDTYPE || raw.typeflag === TypeFlag.XGLTYPE;
    if (meta || raw.typeflag === TypeFlag.GNU_LONGNAME || raw.typeflag === TypeFlag.GNU_LONGLINK) {
      if (raw.size > MAX_META_ENTRY_SIZE) invalid(`Invalid tar archive: a ${raw.typeflag} record of ${raw.size} bytes at byte ${offset} exceeds ${MAX_META_ENTRY_SIZE}`);
      const data = await reader.readExact(raw.size);
      if (!data || !(await reader.skip(paddingSize(raw.size)))) invalid(`Invalid tar archive: it ends inside the record at byte ${offset}`);
      if (raw.typeflag === TypeFlag.XHDTYPE) for (const [key, value] of parsePaxRecords(data)) pax.set(key, value);
      else if (raw.typeflag === TypeFlag.XGLTYPE) for (const [key, value] of parsePaxRecords(data)) global.set(key, value);
      else if (raw.typeflag === TypeFlag.GNU_LONGNAME) longName = data.toString('utf8').replace(/\0+$/, '');
      else longLink = data.toString('utf8').replace(/\0+$/, '');
      continue;
    }
    const header = finishHeader(raw, new Map([...global, ...pax]), longName, longLink);
    pax = new Map();
    longName = undefined;
    longLink = undefined;
    // Only regular files carry data; a hard link's size field is ignored as GNU tar does.
    const size = header.type === 'file' ? header.size : 0;
    if (header.type !== 'file') header.size = 0;
    let left = size;
    const data: AsyncIterable<Buffer> = {
      async *[Symbol.asyncIterator]() {
        while (left > 0) {
          const chunk = await reader.readSome(Math.min(left, READ_CHUNK_SIZE));
          if (!chunk) invalid(`Invalid tar archive: it ends inside the data of ${JSON.stringify(header.name)}`);
          left -= chunk.length;
          yield chunk;
        }
      },
    };
    yield { header, data };
    if (left > 0 && !(await reader.skip(left))) invalid(`Invalid tar archive: it ends inside the data of ${JSON.stringify(header.name)}`);
    if (!(await reader.skip(paddingSize(size)))) invalid(`Invalid tar archive: it ends inside the padding of ${JSON.stringify(header.name)}`);
  }
}
