// A small typed QMP client: greeting, qmp_capabilities, id-matched replies, events, and a
// deadline on every call. QMP is trusted-ish (QEMU runs as our unprivileged user, but it
// also parses guest-controlled data), so lines are size-bounded and parsed defensively.
import { connect, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import { ForkdError, messageOf } from '../lib/errors.js';
import { deadlineSignal } from '../lib/deadline.js';

const MAX_LINE_BYTES = 4 * 1024 * 1024;

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  /** Host wall clock of the event in microseconds (QEMU's own timestamp). */
  timestampUs: number;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  command: string;
}

export class QmpClient {
  readonly events = new EventEmitter<{ event: [QmpEvent]; close: [] }>();
  readonly #socket: Socket;
  readonly #pending = new Map<string, Pending>();
  #nextId = 1;
  #buffer = '';
  #closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('close', () => this.#onClose(new ForkdError('vmm_error', 'QMP connection closed')));
    socket.on('error', (err) => this.#onClose(new ForkdError('vmm_error', `QMP socket error: ${err.message}`)));
  }

  /** Connect to QEMU's QMP socket, read the greeting and negotiate capabilities. */
  static async connect(path: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<QmpClient> {
    const signal = deadlineSignal(opts.timeoutMs ?? 10_000, opts.signal);
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      const onAbort = (): void => {
        s.destroy();
        reject(new ForkdError('timeout', `QMP connect to ${path}: timed out`));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      s.once('connect', () => {
        signal.removeEventListener('abort', onAbort);
        resolve(s);
      });
      s.once('error', (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(new ForkdError('vmm_error', `QMP connect to ${path}: ${err.message}`, { cause: err }));
      });
    });
    const client = new QmpClient(socket);
    await client.#greeting(signal);
    await client.execute('qmp_capabilities', undefined, { signal });
    return client;
  }

  #greetingWaiter: ((line: Record<string, unknown> | Error) => void) | undefined;

  async #greeting(signal: AbortSignal): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(new ForkdError('timeout', 'QMP greeting: timed out'));
      signal.addEventListener('abort', onAbort, { once: true });
      // Called with the first line, or with an error when the socket closes first (QEMU
      // exiting at start): either way this promise settles.
      this.#greetingWaiter = (msg) => {
        signal.removeEventListener('abort', onAbort);
        if (msg instanceof Error) reject(msg);
        else if ('QMP' in msg) resolve();
        else reject(new ForkdError('vmm_error', 'QMP: expected a greeting'));
      };
    });
  }

  /** Run one QMP command and return its `return` value. */
  async execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<T> {
    if (this.#closed) throw new ForkdError('vmm_error', `QMP ${command}: connection is closed`);
    const id = `f${this.#nextId++}`;
    const signal = opts.signal ?? deadlineSignal(opts.timeoutMs ?? 10_000);
    const frame = JSON.stringify(
      args === undefined ? { execute: command, id } : { execute: command, arguments: args, id },
    );
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        this.#pending.delete(id);
        reject(new ForkdError('timeout', `QMP ${command}: no reply before the deadline`));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        command,
        resolve: (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v as T);
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      this.#socket.write(`${frame}\n`);
    });
  }

  /** Resolve with the first event named `name` (optionally matching `filter`) before the deadline. */
  waitForEvent(name: string, opts: { timeoutMs: number; filter?: (e: QmpEvent) => boolean }): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off('event', onEvent);
        reject(new ForkdError('timeout', `QMP: no ${name} event within ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      const onEvent = (e: QmpEvent): void => {
        if (e.event !== name || (opts.filter && !opts.filter(e))) return;
        clearTimeout(timer);
        this.events.off('event', onEvent);
        resolve(e);
      };
      this.events.on('event', onEvent);
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#socket.destroy();
    this.#onClose(new ForkdError('vmm_error', 'QMP connection closed'));
  }

  get closed(): boolean {
    return this.#closed;
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    if (this.#buffer.length > MAX_LINE_BYTES && !this.#buffer.includes('\n')) {
      this.#socket.destroy();
      this.#onClose(new ForkdError('vmm_error', 'QMP: line exceeds the size limit'));
      return;
    }
    let nl: number;
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, nl).trim();
      this.#buffer = this.#buffer.slice(nl + 1);
      if (line) this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    let msg: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return;
      msg = parsed as Record<string, unknown>;
    } catch {
      // QEMU writes only JSON lines; a broken one carries no reply we could route, and the waiting command then fails at its deadline
      return;
    }
    if (this.#greetingWaiter) {
      const waiter = this.#greetingWaiter;
      this.#greetingWaiter = undefined;
      waiter(msg);
      return;
    }
    if (typeof msg.event === 'string') {
      const ts = msg.timestamp as { seconds?: number; microseconds?: number } | undefined;
      const timestampUs = (ts?.seconds ?? 0) * 1_000_000 + (ts?.microseconds ?? 0);
      const data =
        typeof msg.data === 'object' && msg.data !== null ? (msg.data as Record<string, unknown>) : undefined;
      this.events.emit('event', { event: msg.event, timestampUs, ...(data ? { data } : {}) });
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const pending = id === undefined ? undefined : this.#pending.get(id);
    if (!pending || id === undefined) return;
    this.#pending.delete(id);
    if ('error' in msg) {
      const err = msg.error as { class?: string; desc?: string } | undefined;
      pending.reject(
        new ForkdError(
          'vmm_error',
          `QMP ${pending.command} failed: ${err?.desc ?? 'unknown error'} (${err?.class ?? '?'})`,
        ),
      );
    } else {
      pending.resolve(msg.return);
    }
  }

  #onClose(err: ForkdError): void {
    if (this.#closed) return;
    this.#closed = true;
    const greeting = this.#greetingWaiter;
    this.#greetingWaiter = undefined;
    greeting?.(err);
    for (const p of this.#pending.values()) p.reject(new ForkdError(err.code, `QMP ${p.command}: ${messageOf(err)}`));
    this.#pending.clear();
    this.events.emit('close');
  }
}
