// Write one extracted file: created exclusively (never through an existing name or symlink),
// hashed as it streams, sparse (all-zero 4 KiB blocks become holes: memory.bin is mostly zeros
// and was sparse where it was made), fsynced. Memory: one 1 MiB buffer per file.
import { createHash, type Hash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { errnoOf, ForkdError } from '../lib/errors.js';

const PAGE = 4096;
const BUFFER_BYTES = 1 << 20;
const ZERO_PAGE = Buffer.alloc(PAGE);

export class SparseFileSink {
  readonly #fh: FileHandle;
  readonly #path: string;
  readonly #hash: Hash = createHash('sha256');
  readonly #buf = Buffer.allocUnsafe(BUFFER_BYTES);
  #fill = 0;
  /** File offset of #buf[0]: always a multiple of BUFFER_BYTES, so holes stay page-aligned. */
  #offset = 0;
  #closed = false;

  private constructor(fh: FileHandle, path: string) {
    this.#fh = fh;
    this.#path = path;
  }

  static async create(path: string, mode = 0o644): Promise<SparseFileSink> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    return new SparseFileSink(await open(path, flags, mode), path);
  }

  async write(chunk: Buffer): Promise<void> {
    this.#hash.update(chunk);
    let pos = 0;
    while (pos < chunk.length) {
      const n = Math.min(chunk.length - pos, BUFFER_BYTES - this.#fill);
      chunk.copy(this.#buf, this.#fill, pos, pos + n);
      this.#fill += n;
      pos += n;
      if (this.#fill === BUFFER_BYTES) await this.#flush();
    }
  }

  /** Flush, set the length (trailing holes), fsync, close. Returns what was written. */
  async finish(): Promise<{ sha256: string; size: number }> {
    await this.#flush();
    const size = this.#offset;
    await this.#guard(async () => {
      await this.#fh.truncate(size);
      await this.#fh.sync();
    });
    await this.close();
    return { sha256: this.#hash.digest('hex'), size };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close();
  }

  /** Write the buffer's non-zero pages, each run of them in one write. */
  async #flush(): Promise<void> {
    const end = this.#fill;
    let page = 0;
    while (page < end) {
      while (page < end && this.#zeroPage(page, end)) page += PAGE;
      const start = page;
      while (page < end && !this.#zeroPage(page, end)) page += PAGE;
      const stop = Math.min(page, end);
      if (stop > start) await this.#guard(() => this.#writeAll(start, stop, this.#offset + start));
    }
    this.#offset += end;
    this.#fill = 0;
  }

  #zeroPage(page: number, end: number): boolean {
    const len = Math.min(PAGE, end - page);
    // Buffer.equals is a memcmp: a byte loop in JS would dominate a 16 GiB memory.bin.
    return this.#buf.subarray(page, page + len).equals(len === PAGE ? ZERO_PAGE : ZERO_PAGE.subarray(0, len));
  }

  async #writeAll(start: number, stop: number, position: number): Promise<void> {
    let done = 0;
    while (start + done < stop) {
      const { bytesWritten } = await this.#fh.write(this.#buf, start + done, stop - start - done, position + done);
      done += bytesWritten;
    }
  }

  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (errnoOf(err) === 'ENOSPC' || errnoOf(err) === 'EDQUOT')
        throw new ForkdError('insufficient_storage', `no space left writing ${this.#path}; free some disk and retry`, {
          cause: err,
        });
      throw err;
    }
  }
}
