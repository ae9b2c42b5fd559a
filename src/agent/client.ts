// The host's client for one guest agent (one VM's virtio-serial socket). Every request has a
// deadline (and takes an AbortSignal); the guest is untrusted, see connection.ts.
//
//   const agent = await AgentClient.connect(run/agent.sock, { timeoutMs: 30_000, logger });
//   await agent.identity({ sandboxId, hostname });
//   const { exitCode, stdout } = await agent.exec({ argv: ['ls', '/'] });
//   agent.close();
//
// A restored child is a new QEMU process with a new socket: connect a new client to it.
import { randomBytes } from 'node:crypto';
import {
  AGENT_PROTOCOL_VERSION,
  DEFAULT_EVAL_TIMEOUT_MS,
  DEFAULT_EXEC_TIMEOUT_MS,
  DEFAULT_WAIT_TIMEOUT_MS,
  MAX_EXEC_OUTPUT_BYTES,
  MAX_EXEC_STDIN_BYTES,
  MIN_IDENTITY_ENTROPY_BYTES,
  type ExecDone,
  type ResultOf,
  type StreamKind,
} from '../protocol/index.js';
import { ForkdError } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/log.js';
import { connectUnixSocket } from './connect.js';
import { AgentConnection, type CallOptions } from './connection.js';
import { protocolViolation } from './errors.js';
import { AgentFiles, type RequestOptions } from './files.js';
import { BoundedBuffer } from './output.js';

export type { RequestOptions } from './files.js';

export interface ConnectOptions {
  signal?: AbortSignal;
  /** Until the agent answered `hello` (covers a cold boot). Default 30 s. */
  timeoutMs?: number;
  logger?: Logger;
  /** Deadline of requests that set none. Default 30 s. */
  requestTimeoutMs?: number;
  /** Bytes of results (exec output, file reads) this client may hold at once. Default 320 MiB. */
  maxBufferedBytes?: number;
  /**
   * Send `hello` and check the protocol version (default). A restored child skips it: its
   * snapshot recorded the agent's protocol, checked before the restore, and the first
   * request is `identity` — one round trip less on the readiness path.
   */
  hello?: boolean;
}

export interface ExecRequest {
  argv?: string[];
  /** Run through `/bin/sh -c`. */
  shell?: string;
  /** Added to the agent's environment. */
  env?: Record<string, string>;
  cwd?: string;
  stdin?: Buffer | string;
  /** Guest-side limit; the whole process group is SIGKILLed at it. Default 60 s (none for background). */
  timeoutMs?: number;
  background?: boolean;
}

export interface ExecOptions extends RequestOptions {
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Bytes collected per stream; more is streamed to the callbacks but flagged `truncated`. */
  maxOutputBytes?: number;
}

export interface ExecResult {
  exitCode: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: Buffer;
  truncated: boolean;
  timedOut: boolean;
  durationMs: number;
}

/** A process others talk to while it runs (src/core/processes.ts): pid first, then output. */
export interface InteractiveRequest {
  argv?: string[];
  shell?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Run on a pseudo-terminal: its output arrives as 'pty', and `input` goes to the terminal. */
  pty?: { cols: number; rows: number };
  /** Keep stdin open for `input` until `closeInput` (a pty always takes input). */
  stdin?: boolean;
  /** The whole process group is SIGKILLed at it; 0 or absent: none. */
  timeoutMs?: number;
}

export interface InteractiveHandlers {
  /** Ends the process (the guest kills its group) if it has not ended. */
  signal?: AbortSignal;
  /** The pid, once, before any output. */
  onStarted(pid: number): void;
  onOutput(kind: 'stdout' | 'stderr' | 'pty', data: Buffer): void;
}

export type EvalRequest = { code: string; language?: 'js' | 'python'; timeoutMs?: number };

/** An eval's outcome: the value parsed from the guest's JSON text, captured output, or the error thrown. */
export type EvalResult = Omit<ResultOf<'eval'>, 'valueJson'> & { value: unknown };

export interface WarmResult {
  js: boolean;
  python: ResultOf<'warm.python'> | null;
}

/** Beyond the guest's own limit: time for the kill, the drain and the reply to travel. */
const GUEST_LIMIT_MARGIN_MS = 5000;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_WARM_TIMEOUT_MS = 300_000;
const DEFAULT_BUFFERED_BYTES = 320 * 1024 * 1024;

export class AgentClient {
  readonly files: AgentFiles;
  /** Resolves when the connection is gone (closed by either side). */
  readonly closed: Promise<void>;

  private constructor(
    private readonly conn: AgentConnection,
    readonly socketPath: string,
    readonly agentVersion: string,
    private readonly requestTimeoutMs: number,
  ) {
    this.files = new AgentFiles(conn, requestTimeoutMs);
    this.closed = conn.closed;
  }

  /**
   * Connects (retrying while QEMU has not created or opened the socket), then sends `hello`
   * and checks the protocol version. During a cold boot the guest opens its side late;
   * hello just waits in QEMU's buffer until then.
   */
  static async connect(socketPath: string, opts: ConnectOptions = {}): Promise<AgentClient> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const deadline = performance.now() + timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
    const log = (opts.logger ?? silentLogger).child({ component: 'agent', socket: socketPath });
    const socket = await connectUnixSocket(socketPath, signal, timeoutMs);
    const conn = new AgentConnection(socket, log, opts.maxBufferedBytes ?? DEFAULT_BUFFERED_BYTES);
    try {
      // Ends any partial frame the guest still holds from a previous host (a snapshot's parent).
      conn.writeDelimiter();
      const requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
      if (opts.hello === false) return new AgentClient(conn, socketPath, 'unknown', requestTimeoutMs);
      const hello = await conn.call(
        'hello',
        {},
        { timeoutMs: Math.max(1, Math.ceil(deadline - performance.now())), signal: opts.signal },
      );
      if (hello.protocolVersion !== AGENT_PROTOCOL_VERSION) {
        throw new ForkdError(
          'agent_error',
          `agent at ${socketPath} speaks protocol ${hello.protocolVersion} (forkd ${hello.agentVersion}); this host speaks ${AGENT_PROTOCOL_VERSION}: rebuild the image`,
        );
      }
      log.debug('agent connected', { agentVersion: hello.agentVersion });
      return new AgentClient(conn, socketPath, hello.agentVersion, requestTimeoutMs);
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  get isClosed(): boolean {
    return this.conn.isClosed;
  }

  hello(opts: RequestOptions = {}): Promise<ResultOf<'hello'>> {
    return this.conn.call('hello', {}, this.options(opts));
  }

  ping(opts: RequestOptions = {}): Promise<ResultOf<'ping'>> {
    return this.conn.call('ping', {}, this.options(opts));
  }

  /** Gives a restored child its own hostname, fresh entropy (host CSPRNG) and the host's clock. */
  identity(req: { sandboxId: string; hostname: string }, opts: RequestOptions = {}): Promise<ResultOf<'identity'>> {
    const entropy = randomBytes(MIN_IDENTITY_ENTROPY_BYTES);
    return this.conn.call('identity', { ...req, entropy, wallClockMs: Date.now() }, this.options(opts));
  }

  exec(req: ExecRequest & { background: true }, opts?: RequestOptions): Promise<{ pid: number }>;
  exec(req: ExecRequest & { background?: false }, opts?: ExecOptions): Promise<ExecResult>;
  async exec(req: ExecRequest, opts: ExecOptions = {}): Promise<ExecResult | { pid: number }> {
    const stdin = req.stdin === undefined ? undefined : Buffer.from(req.stdin);
    if (stdin && stdin.length > MAX_EXEC_STDIN_BYTES) {
      throw new ForkdError(
        'invalid_argument',
        `exec stdin is ${stdin.length} bytes, over ${MAX_EXEC_STDIN_BYTES}; write a file and redirect it instead`,
      );
    }
    const guestTimeoutMs = req.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const params = {
      ...(req.argv ? { argv: req.argv } : {}),
      ...(req.shell !== undefined ? { shell: req.shell } : {}),
      ...(req.env ? { env: req.env } : {}),
      ...(req.cwd ? { cwd: req.cwd } : {}),
      ...(stdin ? { stdin } : {}),
      // A background process runs until killed unless the caller set a limit.
      ...(req.background
        ? { background: true, ...(req.timeoutMs ? { timeoutMs: req.timeoutMs } : {}) }
        : { timeoutMs: guestTimeoutMs }),
    };
    if (req.background) {
      const result = await this.conn.call('exec', params, this.options(opts));
      if (!('pid' in result)) throw protocolViolation('exec', 'background exec answered without a pid');
      return result;
    }
    return this.collect(opts, guestTimeoutMs, async (call) => {
      const result = await this.conn.call('exec', params, call);
      if ('pid' in result) throw protocolViolation('exec', 'foreground exec answered with a pid');
      return result;
    });
  }

  /** Runs an interactive process; resolves with its exit once it ended and its output was delivered. */
  runInteractive(req: InteractiveRequest, h: InteractiveHandlers): Promise<ExecDone> {
    const timeoutMs = req.timeoutMs ?? 0;
    const params = {
      ...(req.argv ? { argv: req.argv } : {}),
      ...(req.shell !== undefined ? { shell: req.shell } : {}),
      ...(req.env ? { env: req.env } : {}),
      ...(req.cwd ? { cwd: req.cwd } : {}),
      ...(req.pty ? { pty: req.pty } : {}),
      ...(req.stdin ? { stdinOpen: true } : {}),
      timeoutMs,
      announce: true,
    };
    let started = false;
    const onStream = (kind: StreamKind, data: Buffer): void => {
      const expected = req.pty ? kind === 'pty' : kind === 'stdout' || kind === 'stderr';
      if (!started || !expected) {
        throw protocolViolation(
          'exec',
          `${kind} data ${started ? `from a ${req.pty ? '' : 'non-'}pty process` : 'before its pid'}`,
        );
      }
      h.onOutput(kind as 'stdout' | 'stderr' | 'pty', data);
    };
    const onStarted = (pid: number): void => {
      started = true;
      h.onStarted(pid);
    };
    const call = { timeoutMs: timeoutMs > 0 ? timeoutMs + GUEST_LIMIT_MARGIN_MS : Infinity, signal: h.signal };
    return this.conn.call('exec', params, { ...call, onStream, onStarted }).then((result) => {
      if ('pid' in result) throw protocolViolation('exec', 'an interactive exec answered with a pid');
      if (!started) throw protocolViolation('exec', 'an interactive exec ended without announcing its pid');
      return result;
    });
  }

  /** Input for a running interactive process (at most MAX_INPUT_CHUNK_BYTES; `busy` when its buffer is full). */
  async input(req: { pid: number; data: Buffer }, opts: RequestOptions = {}): Promise<void> {
    await this.conn.call('input', req, this.options(opts));
  }

  /** Ends an interactive process's input (a terminal gets ^D). */
  async closeInput(req: { pid: number }, opts: RequestOptions = {}): Promise<void> {
    await this.conn.call('input.close', req, this.options(opts));
  }

  /** Sets the terminal size of a running pty process. */
  async resize(req: { pid: number; cols: number; rows: number }, opts: RequestOptions = {}): Promise<void> {
    await this.conn.call('resize', req, this.options(opts));
  }

  /** Signals a process's whole group (default SIGKILL): a background one, or a running interactive one. */
  kill(req: { pid: number; signal?: string }, opts: RequestOptions = {}): Promise<ResultOf<'kill'>> {
    return this.conn.call('kill', req, this.options(opts));
  }

  /** Waits for a background process; returns its exit and the output it buffered. */
  wait(req: { pid: number; timeoutMs?: number }, opts: ExecOptions = {}): Promise<ExecResult> {
    const guestTimeoutMs = req.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
    return this.collect(opts, guestTimeoutMs, (call) =>
      this.conn.call('wait', { pid: req.pid, timeoutMs: guestTimeoutMs }, call),
    );
  }

  /** JS in the JS worker's persistent context, or Python in the warm worker (src/guest/workers). */
  async eval(req: EvalRequest, opts: RequestOptions = {}): Promise<EvalResult> {
    const timeoutMs = req.timeoutMs ?? DEFAULT_EVAL_TIMEOUT_MS;
    const { valueJson, ...rest } = await this.conn.call(
      'eval',
      { code: req.code, ...(req.language ? { language: req.language } : {}), timeoutMs },
      { timeoutMs: opts.timeoutMs ?? timeoutMs + GUEST_LIMIT_MARGIN_MS, signal: opts.signal },
    );
    let value: unknown;
    try {
      value = JSON.parse(valueJson);
    } catch {
      throw protocolViolation('eval', `valueJson is not JSON (${valueJson.length} chars)`);
    }
    return { value, ...rest };
  }

  /**
   * Starts the eval workers the image has and, if asked, has the Python worker import modules
   * (before a snapshot, so children inherit them warm).
   */
  async warm(req: { pythonPreload?: string[] } = {}, opts: RequestOptions = {}): Promise<WarmResult> {
    const call = { timeoutMs: opts.timeoutMs ?? DEFAULT_WARM_TIMEOUT_MS, signal: opts.signal };
    const workers = await this.conn.call('warm', req, call);
    if (req.pythonPreload === undefined) return { js: workers.js, python: null };
    if (!workers.python) {
      throw new ForkdError(
        'invalid_argument',
        'this image has no Python: build it with --packages python3 to preload modules',
      );
    }
    return { js: workers.js, python: await this.conn.call('warm.python', { pythonPreload: req.pythonPreload }, call) };
  }

  /** Idempotent; fails every pending request with `agent_error`. */
  close(): void {
    this.conn.close();
  }

  private options(opts: RequestOptions): { timeoutMs: number; signal: AbortSignal | undefined } {
    return { timeoutMs: opts.timeoutMs ?? this.requestTimeoutMs, signal: opts.signal };
  }

  /** Shared by exec and wait: bounded stdout/stderr collection plus the caller's callbacks. */
  private async collect(
    opts: ExecOptions,
    guestTimeoutMs: number,
    run: (call: CallOptions) => Promise<ExecDone>,
  ): Promise<ExecResult> {
    const max = opts.maxOutputBytes ?? MAX_EXEC_OUTPUT_BYTES;
    const stdout = new BoundedBuffer(this.conn, max);
    const stderr = new BoundedBuffer(this.conn, max);
    const onStream = (kind: StreamKind, chunk: Buffer): void => {
      if (kind !== 'stdout' && kind !== 'stderr') throw protocolViolation('exec', `${kind} data in command output`);
      (kind === 'stdout' ? stdout : stderr).push(chunk);
      (kind === 'stdout' ? opts.onStdout : opts.onStderr)?.(chunk);
    };
    try {
      const done = await run({
        timeoutMs: opts.timeoutMs ?? guestTimeoutMs + GUEST_LIMIT_MARGIN_MS,
        signal: opts.signal,
        onStream,
      });
      const truncated = done.truncated || stdout.truncated || stderr.truncated;
      return { ...done, truncated, stdout: stdout.take(), stderr: stderr.take() };
    } finally {
      stdout.release();
      stderr.release();
    }
  }
}

/** Convenience: `AgentClient.connect`. */
export function connectAgent(socketPath: string, opts?: ConnectOptions): Promise<AgentClient> {
  return AgentClient.connect(socketPath, opts);
}
