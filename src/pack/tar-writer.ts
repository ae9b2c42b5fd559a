// A minimal streaming tar writer (POSIX ustar, pax `size` for files of 8 GiB and more). Bodies
// are streamed with backpressure and must be exactly the declared size: a file that grows or
// shrinks while it is packed fails the pack instead of producing a lying archive.
import type { Writable } from 'node:stream';
import { ForkdError } from '../lib/errors.js';
import { BLOCK, encodeHeader, paxRecordsFor, RECORD, TYPE, type HeaderInput } from './tar-header.js';
import { padOf } from './tar-reader.js';

export class TarWriter {
  readonly #out: Writable;
  /** Bytes written so far (the uncompressed tar stream). */
  written = 0;

  constructor(out: Writable) {
    this.#out = out;
  }

  /** One entry: header (with a pax header first when needed), body, zero padding. */
  async add(header: HeaderInput, body?: Buffer | AsyncIterable<Buffer>): Promise<void> {
    const pax = paxRecordsFor(header);
    if (pax) {
      await this.#write(encodeHeader({ name: 'PaxHeader', size: pax.length, typeflag: TYPE.paxLocal }));
      await this.#write(pax);
      await this.#write(Buffer.alloc(padOf(pax.length)));
    }
    await this.#write(encodeHeader(header));
    let got = 0;
    if (body !== undefined) {
      const chunks = Buffer.isBuffer(body) ? [body] : body;
      for await (const chunk of chunks) {
        got += chunk.length;
        if (got > header.size) break;
        await this.#write(chunk);
      }
    }
    if (got !== header.size) {
      throw new ForkdError(
        'corrupt_snapshot',
        `${header.name} ${got > header.size ? 'is larger than' : 'has fewer bytes than'} the ${header.size} bytes declared for it (did it change while being packed?)`,
      );
    }
    await this.#write(Buffer.alloc(padOf(header.size)));
  }

  /** The end-of-archive marker (two zero blocks), padded to a whole tar record. */
  async end(): Promise<void> {
    const total = this.written + 2 * BLOCK;
    await this.#write(Buffer.alloc(2 * BLOCK + ((RECORD - (total % RECORD)) % RECORD)));
  }

  async #write(buf: Buffer): Promise<void> {
    if (buf.length === 0) return;
    this.written += buf.length;
    await writeWithBackpressure(this.#out, buf);
  }
}

/** write(), waiting for 'drain' when the stream is full; rejects if the stream fails or closes. */
export function writeWithBackpressure(out: Writable, buf: Buffer): Promise<void> {
  if (out.destroyed || out.writableEnded)
    return Promise.reject(out.errored ?? new Error('the output stream is closed'));
  if (out.write(buf)) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onError = (err: Error): void => done(err);
    const onClose = (): void => done(out.errored ?? new Error('the output stream closed before the write finished'));
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}
