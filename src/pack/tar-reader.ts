// A strict streaming tar reader: one entry at a time, bodies streamed (never buffered whole),
// pax `size` applied, GNU extensions and global pax headers refused, the end-of-archive marker
// required, and nothing but zero padding allowed after it. What an entry may *be* (its type,
// its name) is the caller's policy; this layer only guarantees the stream parses as tar.
import { ForkdError } from '../lib/errors.js';
import { ByteSource } from './byte-source.js';
import { BLOCK, decodeHeader, isZeroBlock, parsePaxRecords, TYPE, type TarHeader } from './tar-header.js';

export interface TarReaderOptions {
  /** Largest pax extended header accepted (default 64 KiB). */
  maxPaxBytes?: number;
  /** Largest amount of zero padding accepted after the end marker (default 1 MiB). */
  maxTrailingBytes?: number;
}

const bad = (msg: string): ForkdError =>
  new ForkdError('corrupt_snapshot', `pack is not a valid forkd tar stream: ${msg}`);

export class TarReader {
  readonly #src: ByteSource;
  readonly #maxPax: number;
  readonly #maxTrailing: number;
  /** Body bytes (plus padding) of the current entry not yet consumed. */
  #pending = 0;
  #padding = 0;
  #current: TarHeader | undefined;
  #ended = false;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>, opts: TarReaderOptions = {}) {
    this.#src = new ByteSource(source);
    this.#maxPax = opts.maxPaxBytes ?? 64 * 1024;
    this.#maxTrailing = opts.maxTrailingBytes ?? 1024 * 1024;
  }

  /** Bytes of the tar stream consumed so far. */
  get position(): number {
    return this.#src.consumed;
  }

  /** The next entry's header, or null at the end-of-archive marker. Skips an unread body. */
  async next(): Promise<TarHeader | null> {
    if (this.#ended) return null;
    await this.#skipRest();
    let pax: { size?: number } | undefined;
    for (;;) {
      const block = await this.#block('header');
      if (isZeroBlock(block)) {
        if (pax) throw bad('a pax header is followed by the end of the archive');
        if (!isZeroBlock(await this.#block('end-of-archive marker')))
          throw bad('a zero block is followed by data (an end-of-archive marker is two zero blocks)');
        this.#ended = true;
        this.#current = undefined;
        return null;
      }
      const h = decodeHeader(block);
      if (h.typeflag === TYPE.paxLocal) {
        if (pax) throw bad('two pax headers in a row');
        if (h.size > this.#maxPax) throw bad(`pax header of ${h.size} bytes (at most ${this.#maxPax})`);
        const data = await this.#exact(h.size, 'pax header');
        await this.#exact(padOf(h.size), 'pax header padding');
        pax = parsePaxRecords(data);
        continue;
      }
      if (h.typeflag === TYPE.paxGlobal) throw bad('a global pax header (type g) is not supported');
      if (h.typeflag === TYPE.gnuLongName || h.typeflag === TYPE.gnuLongLink)
        throw bad(`GNU long-name entry (type ${h.typeflag}) is not supported: entry names are short`);
      if (h.typeflag === TYPE.gnuSparse) throw bad('GNU sparse entry (type S) is not supported');
      if (pax?.size !== undefined) h.size = pax.size;
      this.#current = h;
      this.#pending = h.size;
      this.#padding = padOf(h.size);
      return h;
    }
  }

  /** The current entry's body, exactly `size` bytes, as it streams in. Readable once. */
  async *body(): AsyncGenerator<Buffer> {
    const h = this.#current;
    if (!h) throw new Error('TarReader.body() without a current entry');
    while (this.#pending > 0) {
      let got = 0;
      for await (const piece of this.#src.take(this.#pending)) {
        got += piece.length;
        this.#pending -= piece.length;
        yield piece;
      }
      if (got === 0) throw bad(`stream ends inside ${h.name} (${this.#pending} of ${h.size} bytes missing)`);
    }
    await this.#exact(this.#padding, `padding after ${h.name}`);
    this.#padding = 0;
  }

  /** After the end marker: only zero padding, bounded, until the stream ends. */
  async finish(): Promise<void> {
    if (!this.#ended) throw bad('finish() before the end-of-archive marker');
    let trailing = 0;
    for (;;) {
      const chunk = await this.#src.read(64 * 1024);
      if (chunk.length === 0) return;
      if (!isZeroBlock(chunk)) throw bad('data after the end-of-archive marker');
      trailing += chunk.length;
      if (trailing > this.#maxTrailing)
        throw bad(`more than ${this.#maxTrailing} bytes after the end-of-archive marker`);
    }
  }

  /** Stop reading (on failure): releases the underlying stream. */
  close(): Promise<void> {
    return this.#src.close();
  }

  async #skipRest(): Promise<void> {
    while (this.#pending > 0) {
      let got = 0;
      for await (const piece of this.#src.take(this.#pending)) {
        got += piece.length;
        this.#pending -= piece.length;
      }
      if (got === 0) throw bad(`stream ends inside ${this.#current?.name ?? 'an entry'}`);
    }
    if (this.#padding > 0) await this.#exact(this.#padding, 'entry padding');
    this.#padding = 0;
  }

  async #block(what: string): Promise<Buffer> {
    const b = await this.#src.read(BLOCK);
    if (b.length === 0 && what === 'header') throw bad('stream ends without an end-of-archive marker (truncated?)');
    if (b.length !== BLOCK) throw bad(`stream ends inside a ${what} (truncated?)`);
    return b;
  }

  async #exact(n: number, what: string): Promise<Buffer> {
    const b = await this.#src.read(n);
    if (b.length !== n) throw bad(`stream ends inside the ${what} (truncated?)`);
    return b;
  }
}

export function padOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}
