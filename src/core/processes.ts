// Interactive processes of one live sandbox (issue 13): started with a pid announced before any
// output, stdin kept open for input, optionally on a pseudo-terminal with resize; any number of
// consumers follow a process's events (start() from its beginning, connect() from now on).
// A process outlives its consumers: only a signal, its timeout or the sandbox's release end it.
//
// Each process is one long exec request on the sandbox's agent connection (protocol 3's
// `announce`, `stdinOpen`, `pty`); input, resize and signals are requests of their own naming
// the pid. Output is fanned out to consumers through bounded queues: a consumer that falls more
// than CONSUMER_BUFFER_BYTES behind (or that never reads) is cut off with a `busy` error rather
// than slowing the process or the agent connection, and all queues of a sandbox together hold at
// most SANDBOX_BUFFER_BYTES.
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentClient, InteractiveRequest } from '../agent/client.js';
import { ForkdError, messageOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { MAX_EXEC_TIMEOUT_MS, MAX_INPUT_CHUNK_BYTES, MAX_PTY_DIMENSION } from '../protocol/limits.js';
import { ProcessConsumer, type ByteBudget } from './process-consumer.js';

/** What the agent runs (exactly one of argv and shell), with the caller's label shown by list(). */
export interface StartProcessRequest extends InteractiveRequest {
  tag?: string;
}

export type ProcessEvent =
  | { type: 'start'; pid: number }
  | { type: 'stdout' | 'stderr' | 'pty'; data: Buffer }
  | { type: 'end'; exitCode: number | null; signal: string | null; timedOut: boolean; error?: string };

export interface ProcessInfo {
  pid: number;
  tag?: string;
  argv?: string[];
  shell?: string;
  env: Record<string, string>;
  cwd?: string;
  pty: boolean;
}

/** For start(): events begin with 'start'. */
export interface ProcessStream {
  pid: number;
  events: AsyncIterable<ProcessEvent>;
}

export const PROCESS_SIGNALS = ['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP'] as const;
export type ProcessSignal = (typeof PROCESS_SIGNALS)[number];

/** Interactive processes per sandbox; each holds one of the agent connection's 64 request slots. */
export const MAX_PROCESSES = 32;
/** Consumers following one process at once. */
export const MAX_CONSUMERS = 16;
/** Output queued for one consumer that has not read it yet. */
export const CONSUMER_BUFFER_BYTES = 4 * 1024 * 1024;
/** Output queued for all consumers of one sandbox together. */
export const SANDBOX_BUFFER_BYTES = 64 * 1024 * 1024;
/** How long sendInput retries while the guest's input buffer for the process is full. */
export const INPUT_TIMEOUT_MS = 30_000;
const MAX_TAG_CHARS = 256;

interface Entry {
  info: ProcessInfo;
  consumers: Set<ProcessConsumer>;
  stdin: boolean;
  /** Input and close-input requests, in order: one at a time per process. */
  input: Promise<void>;
  stop: AbortController;
}

export class SandboxProcesses {
  readonly #entries = new Map<number, Entry>();
  /** Starts waiting for their pid: dispose() stops them too. */
  readonly #starting = new Set<AbortController>();
  #buffered = 0;
  #disposed: string | undefined;
  readonly #budget: ByteBudget = {
    reserve: (n) => {
      if (this.#buffered + n > SANDBOX_BUFFER_BYTES) return false;
      this.#buffered += n;
      return true;
    },
    release: (n) => {
      this.#buffered -= n;
    },
  };

  constructor(
    private readonly agent: AgentClient,
    private readonly log: Logger,
  ) {}

  /** Starts a process; resolves once the guest announced its pid (its events begin with 'start'). */
  async start(req: StartProcessRequest, signal?: AbortSignal): Promise<ProcessStream> {
    const info = checkRequest(req);
    this.#assertOpen();
    if (this.#entries.size + this.#starting.size >= MAX_PROCESSES) {
      throw new ForkdError('busy', `${MAX_PROCESSES} processes already run in this sandbox; end one first`, {
        details: { retryAfterSecs: 1 },
      });
    }
    signal?.throwIfAborted();
    const stop = new AbortController();
    this.#starting.add(stop);
    const first = new ProcessConsumer(this.#budget, CONSUMER_BUFFER_BYTES);
    const onAbort = (): void => stop.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let entry: Entry | undefined;
    try {
      return await new Promise<ProcessStream>((resolve, reject) => {
        const run = this.agent.runInteractive(
          {
            ...(req.argv ? { argv: req.argv } : {}),
            ...(req.shell !== undefined ? { shell: req.shell } : {}),
            ...(req.env ? { env: req.env } : {}),
            ...(req.cwd ? { cwd: req.cwd } : {}),
            ...(req.pty ? { pty: req.pty } : {}),
            ...(req.stdin ? { stdin: true } : {}),
            timeoutMs: req.timeoutMs ?? 0,
          },
          {
            signal: stop.signal,
            onStarted: (pid) => {
              this.#assertOpen(); // disposed meanwhile: throwing cancels the exec
              if (this.#entries.has(pid)) {
                throw new ForkdError('agent_error', `the agent announced pid ${pid}, which a running process holds`);
              }
              entry = {
                info: { ...info, pid },
                consumers: new Set([first]),
                stdin: !!req.stdin,
                input: Promise.resolve(),
                stop,
              };
              this.#entries.set(pid, entry);
              first.push({ type: 'start', pid });
              resolve({ pid, events: first });
            },
            onOutput: (type, data) => entry && this.#broadcast(entry, { type, data }),
          },
        );
        run.then(
          (done) => {
            if (entry)
              this.#end(entry, { type: 'end', exitCode: done.exitCode, signal: done.signal, timedOut: done.timedOut });
          },
          (err: unknown) => {
            if (!entry) return reject(err instanceof Error ? err : new Error(String(err)));
            this.#end(entry, { type: 'end', exitCode: null, signal: null, timedOut: false, error: messageOf(err) });
          },
        );
      });
    } finally {
      this.#starting.delete(stop);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Events from now on, then 'end'; ForkdError not_found for an unknown pid. */
  connect(pid: number): ProcessStream {
    const entry = this.#get(pid);
    for (const c of entry.consumers) if (c.closed) entry.consumers.delete(c);
    if (entry.consumers.size >= MAX_CONSUMERS) {
      throw new ForkdError('busy', `process ${pid} already has ${MAX_CONSUMERS} consumers; close one first`);
    }
    const consumer = new ProcessConsumer(this.#budget, CONSUMER_BUFFER_BYTES);
    entry.consumers.add(consumer);
    return { pid, events: consumer };
  }

  /** Output queued for consumers that have not read it yet (all processes of this sandbox). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  list(): ProcessInfo[] {
    return [...this.#entries.values()].map((e) => ({ ...e.info }));
  }

  /** Writes to the process's stdin (or terminal), in order; waits while the guest's buffer is full. */
  async sendInput(pid: number, data: Buffer): Promise<void> {
    const entry = this.#inputOf(pid);
    return await this.#queue(entry, async () => {
      for (let at = 0; at < data.length; at += MAX_INPUT_CHUNK_BYTES) {
        const chunk = data.subarray(at, at + MAX_INPUT_CHUNK_BYTES);
        await this.#retryBusy(pid, () => this.agent.input({ pid, data: chunk }));
      }
    });
  }

  /** Ends the input once what was sent before is written (a terminal gets ^D, as typed). */
  async closeInput(pid: number): Promise<void> {
    const entry = this.#inputOf(pid);
    return await this.#queue(entry, () => this.#retryBusy(pid, () => this.agent.closeInput({ pid })));
  }

  /** Signals the process's whole group. */
  async signal(pid: number, signal: ProcessSignal): Promise<void> {
    this.#get(pid);
    if (!PROCESS_SIGNALS.includes(signal)) {
      throw new ForkdError('invalid_argument', `signal ${String(signal)} is not one of ${PROCESS_SIGNALS.join(', ')}`);
    }
    await this.agent.kill({ pid, signal });
  }

  async resize(pid: number, cols: number, rows: number): Promise<void> {
    const entry = this.#get(pid);
    if (!entry.info.pty)
      throw new ForkdError('invalid_state', `process ${pid} runs without a terminal; nothing to resize`);
    checkDimensions(cols, rows);
    await this.agent.resize({ pid, cols, rows });
  }

  /**
   * The sandbox is going away: every process is stopped (the guest kills the groups of
   * cancelled requests) and every consumer gets 'end' with `error`. Idempotent.
   */
  dispose(reason: string): void {
    if (this.#disposed !== undefined) return;
    this.#disposed = reason;
    for (const stop of this.#starting) stop.abort(new ForkdError('unavailable', reason));
    for (const entry of [...this.#entries.values()]) {
      entry.stop.abort(new ForkdError('unavailable', reason));
      this.#end(entry, { type: 'end', exitCode: null, signal: null, timedOut: false, error: reason });
    }
  }

  #broadcast(entry: Entry, event: ProcessEvent): void {
    for (const consumer of entry.consumers) {
      const left = consumer.closed; // its reader stopped reading: not an overflow
      if (!left && consumer.push(event)) continue;
      entry.consumers.delete(consumer);
      if (!left) this.log.warn('a reader of a process fell behind its output; cut off', { pid: entry.info.pid });
    }
  }

  #end(entry: Entry, event: ProcessEvent): void {
    if (this.#entries.get(entry.info.pid) !== entry) return;
    this.#entries.delete(entry.info.pid);
    for (const consumer of entry.consumers) consumer.end(event);
    entry.consumers.clear();
  }

  #get(pid: number): Entry {
    this.#assertOpen();
    const entry = Number.isSafeInteger(pid) ? this.#entries.get(pid) : undefined;
    if (!entry) throw new ForkdError('not_found', `no running process with pid ${pid} in this sandbox`);
    return entry;
  }

  #inputOf(pid: number): Entry {
    const entry = this.#get(pid);
    if (!entry.stdin && !entry.info.pty) {
      throw new ForkdError('invalid_state', `process ${pid} was started without stdin; start it with stdin: true`);
    }
    return entry;
  }

  #queue(entry: Entry, fn: () => Promise<void>): Promise<void> {
    const next = entry.input.then(fn);
    entry.input = next.catch(() => undefined); // one failed write must not block the next
    return next;
  }

  /** The guest answers `busy` while the process has not read earlier input: wait and retry. */
  async #retryBusy(pid: number, fn: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + INPUT_TIMEOUT_MS;
    for (let delayMs = 5; ; delayMs = Math.min(delayMs * 2, 200)) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof ForkdError && err.code === 'busy')) throw err;
        if (Date.now() + delayMs > deadline) {
          throw new ForkdError('timeout', `process ${pid} read none of its input for ${INPUT_TIMEOUT_MS} ms`, {
            cause: err,
          });
        }
      }
      await sleep(delayMs);
      this.#get(pid); // ended meanwhile: not_found
    }
  }

  #assertOpen(): void {
    if (this.#disposed !== undefined) throw new ForkdError('invalid_state', `sandbox processes: ${this.#disposed}`);
  }
}

function checkDimensions(cols: unknown, rows: unknown): void {
  const ok = (n: unknown): boolean => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= MAX_PTY_DIMENSION;
  if (!ok(cols) || !ok(rows)) {
    throw new ForkdError('invalid_argument', `pty cols and rows must be integers 1..${MAX_PTY_DIMENSION}`);
  }
}

/** Shape checks a caller can get wrong (the agent checks again; this gives a clear 400 first). */
function checkRequest(req: StartProcessRequest): Omit<ProcessInfo, 'pid'> {
  if ((req.argv === undefined) === (req.shell === undefined)) {
    throw new ForkdError('invalid_argument', 'a process needs exactly one of argv or shell');
  }
  if (req.argv && (req.argv.length === 0 || req.argv[0] === '')) {
    throw new ForkdError('invalid_argument', 'argv is empty; give the program to run first');
  }
  if (req.pty) checkDimensions(req.pty.cols, req.pty.rows);
  const t = req.timeoutMs ?? 0;
  if (!Number.isInteger(t) || t < 0 || t > MAX_EXEC_TIMEOUT_MS) {
    throw new ForkdError('invalid_argument', `timeoutMs must be an integer 0..${MAX_EXEC_TIMEOUT_MS} (0: none)`);
  }
  if (req.tag !== undefined && req.tag.length > MAX_TAG_CHARS) {
    throw new ForkdError('invalid_argument', `tag is longer than ${MAX_TAG_CHARS} characters`);
  }
  return {
    ...(req.tag !== undefined ? { tag: req.tag } : {}),
    ...(req.argv ? { argv: [...req.argv] } : {}),
    ...(req.shell !== undefined ? { shell: req.shell } : {}),
    env: { ...req.env },
    ...(req.cwd !== undefined ? { cwd: req.cwd } : {}),
    pty: req.pty !== undefined,
  };
}
