// One consumer of a process's events (processes.ts): a bounded queue read as an async iterator.
// The producer never waits for a consumer: output beyond `maxBytes` unread (per consumer) or
// beyond the sandbox's budget cuts this consumer off with a `busy` error, and the process and
// its other consumers go on. Leaving the loop (break, return) detaches the consumer.
import { ForkdError } from '../lib/errors.js';
import type { ProcessEvent } from './processes.js';

/** Bytes of queued output shared by every consumer of a sandbox. */
export interface ByteBudget {
  reserve(bytes: number): boolean;
  release(bytes: number): void;
}

const sizeOf = (event: ProcessEvent): number => ('data' in event ? event.data.length : 0);

export class ProcessConsumer implements AsyncIterableIterator<ProcessEvent> {
  readonly #queue: ProcessEvent[] = [];
  #bytes = 0;
  /** Whether #bytes is counted in the sandbox's budget (until the process ended). */
  #counted = true;
  #wake: (() => void) | undefined;
  /** No more events will be queued ('end' queued, cut off, or the reader left). */
  #closed = false;
  #error: ForkdError | undefined;

  constructor(
    private readonly budget: ByteBudget,
    private readonly maxBytes: number,
  ) {}

  /** Queues an event; false if this consumer is (now) cut off or gone, so the producer drops it. */
  push(event: ProcessEvent): boolean {
    if (this.#closed) return false;
    const size = sizeOf(event);
    if (this.#bytes + size > this.maxBytes || !this.budget.reserve(size)) {
      this.#drop();
      this.#error = new ForkdError(
        'busy',
        `this reader of the process fell more than ${this.maxBytes} bytes behind its output and was cut off; connect again to follow it`,
      );
      this.#close();
      return false;
    }
    this.#bytes += size;
    this.#queue.push(event);
    this.#wake?.();
    return true;
  }

  /**
   * The last event ('end'); the iterator finishes after it. What is still queued leaves the
   * sandbox's budget (it is for running processes): it is this consumer's holder's memory now,
   * at most `maxBytes`, and goes with the consumer whether or not it is ever read.
   */
  end(event: ProcessEvent): void {
    if (this.#closed) return;
    this.#queue.push(event);
    this.#uncount();
    this.#close();
  }

  async next(): Promise<IteratorResult<ProcessEvent, undefined>> {
    for (;;) {
      const event = this.#queue.shift();
      if (event) {
        const size = sizeOf(event);
        this.#bytes -= size;
        if (this.#counted) this.budget.release(size);
        return { value: event, done: false };
      }
      if (this.#error) {
        const err = this.#error;
        this.#error = undefined;
        throw err;
      }
      if (this.#closed) return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }

  /** The reader left: queued output is dropped; the process goes on. */
  return(): Promise<IteratorResult<ProcessEvent, undefined>> {
    this.#drop();
    this.#error = undefined;
    this.#close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Whether the producer should stop sending to it. */
  get closed(): boolean {
    return this.#closed;
  }

  #drop(): void {
    this.#uncount();
    this.#bytes = 0;
    this.#queue.length = 0;
  }

  #uncount(): void {
    if (this.#counted) this.budget.release(this.#bytes);
    this.#counted = false;
  }

  #close(): void {
    this.#closed = true;
    this.#wake?.();
  }
}
