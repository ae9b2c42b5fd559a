// Pull exact byte counts out of a stream of chunks (a zstd pipe) without buffering more than
// one chunk: headers are read whole, bodies are handed on as slices of the incoming chunks.
export class ByteSource {
  readonly #iter: AsyncIterator<Buffer>;
  #head: Buffer = Buffer.alloc(0);
  #ended = false;
  /** Bytes handed out so far. */
  consumed = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    const inner = source[Symbol.asyncIterator]();
    this.#iter = {
      next: async () => {
        const r = await inner.next();
        if (r.done) return r;
        const v = r.value;
        return {
          done: false,
          value: typeof v === 'string' ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.length),
        };
      },
      return: async () => {
        await inner.return?.();
        return { done: true, value: undefined };
      },
    };
  }

  async #fill(): Promise<boolean> {
    while (this.#head.length === 0) {
      if (this.#ended) return false;
      const r = await this.#iter.next();
      if (r.done) {
        this.#ended = true;
        return false;
      }
      this.#head = r.value;
    }
    return true;
  }

  /** Exactly n bytes (copied when they span chunks), or fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n && (await this.#fill())) {
      const take = Math.min(n - got, this.#head.length);
      parts.push(this.#head.subarray(0, take));
      this.#head = this.#head.subarray(take);
      got += take;
    }
    this.consumed += got;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, got);
  }

  /** Up to n bytes as they arrive (no copies); stops early only at the end of the stream. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0 && (await this.#fill())) {
      const take = Math.min(left, this.#head.length);
      const piece = this.#head.subarray(0, take);
      this.#head = this.#head.subarray(take);
      left -= take;
      this.consumed += take;
      yield piece;
    }
  }

  /** Stop reading the underlying stream (lets a pipe's producer see EPIPE and exit). */
  async close(): Promise<void> {
    this.#ended = true;
    this.#head = Buffer.alloc(0);
    await this.#iter.return?.();
  }
}
