// `sandbox.pty`: a process on a pseudo-terminal, in the shape of E2B's: `create` starts it
// (POST /v1/sandboxes/{id}/processes with `pty`, its NDJSON events read as they come) and
// resolves once the guest announced its pid; the terminal's bytes go to `onData`; `sendInput`,
// `resize` and `kill` address it by pid. Closing the event stream does not stop the process:
// `kill`, its timeout or the sandbox's end do.
import { ForkdApiError } from './errors.js';
import { ndjsonLines, type Transport } from './http.js';
import { PROCESS_TIMEOUT_SECS } from './contract.js';

export interface PtySize {
  cols: number;
  rows: number;
}

export interface PtyCreateOptions extends PtySize {
  /** The terminal's output, bytes as the guest wrote them (echo and `\r\n` included). */
  onData: (data: Uint8Array) => void;
  /** argv of the program on the terminal (default: an interactive `/bin/sh -i`); a string goes to `/bin/sh -c`. */
  cmd?: string | string[];
  /** Environment variables, over the sandbox's `envs`; TERM defaults to xterm-256color. */
  envs?: Record<string, string>;
  cwd?: string;
  /** The process's timeout (ms; default 0: none): its process group is killed at it. */
  timeoutMs?: number;
  /** Bound of the event stream (default: the timeout plus 30 s, or 24 h without one). */
  requestTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface PtyResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
}

export interface PtyHandle {
  readonly pid: number;
  /** Resolves when the process ends (any exit code: a terminal session's end is no error). */
  wait(): Promise<PtyResult>;
  /** SIGKILL to its process group; false if it had already ended. */
  kill(): Promise<boolean>;
}

type EventLine =
  | { type: 'start'; pid: number }
  | { type: 'pty' | 'stdout' | 'stderr'; data: string }
  | { type: 'end'; exit_code: number | null; signal: string | null; timed_out: boolean; error?: string }
  | { type: 'error'; error: string; code: ForkdApiError['code'] };

export class Pty {
  constructor(
    private readonly t: Transport,
    private readonly sandboxId: string,
    private readonly baseEnvs: Record<string, string>,
  ) {}

  #path(pid?: number, action?: string): string {
    const base = `/v1/sandboxes/${encodeURIComponent(this.sandboxId)}/processes`;
    return pid === undefined ? base : `${base}/${pid}/${action}`;
  }

  async create(opts: PtyCreateOptions): Promise<PtyHandle> {
    const secs = Math.ceil((opts.timeoutMs ?? 0) / 1000);
    if (!(secs >= PROCESS_TIMEOUT_SECS.min && secs <= PROCESS_TIMEOUT_SECS.max))
      throw new ForkdApiError('invalid_argument', 0, `timeoutMs must be 0..${PROCESS_TIMEOUT_SECS.max * 1000}`);
    const cmd = opts.cmd ?? ['/bin/sh', '-i'];
    const { res } = await this.t.send({
      method: 'POST',
      path: this.#path(),
      json: {
        ...(typeof cmd === 'string' ? { cmd } : { args: cmd }),
        env: { TERM: 'xterm-256color', ...this.baseEnvs, ...opts.envs },
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        pty: { cols: opts.cols, rows: opts.rows },
        timeout_secs: secs,
      },
      signal: opts.signal,
      timeoutMs: opts.requestTimeoutMs ?? (secs > 0 ? secs * 1000 + 30_000 : 24 * 3600_000),
    });
    const lines = ndjsonLines(res);
    let pid: number | undefined;
    try {
      const first = (await lines.next()).value as EventLine | undefined;
      if (first?.type === 'error') throw new ForkdApiError(first.code, 200, first.error);
      if (first?.type !== 'start')
        throw new ForkdApiError('protocol_error', 200, 'the process stream did not start with its pid');
      pid = first.pid;
    } catch (err) {
      res.destroy();
      throw err;
    }
    const ended = this.#follow(lines, opts.onData).finally(() => res.destroy());
    ended.catch(() => undefined); // only marks it handled: wait() hands the error to its caller
    let done = false;
    void ended.then(
      () => (done = true),
      () => (done = true),
    );
    const started = pid;
    return {
      pid: started,
      wait: () => ended,
      kill: async () => (done ? false : this.kill(started)),
    };
  }

  async #follow(lines: AsyncGenerator<unknown>, onData: (data: Uint8Array) => void): Promise<PtyResult> {
    try {
      for await (const raw of lines) {
        const line = raw as EventLine;
        if (line.type === 'pty' || line.type === 'stdout' || line.type === 'stderr')
          onData(Buffer.from(line.data, 'base64'));
        else if (line.type === 'error') throw new ForkdApiError(line.code, 200, line.error);
        else if (line.type === 'end') {
          if (line.error) throw new ForkdApiError('internal', 200, line.error);
          return { exitCode: line.exit_code, signal: line.signal, timedOut: line.timed_out };
        }
      }
    } catch (err) {
      if (err instanceof ForkdApiError) throw err;
      throw new ForkdApiError('client_timeout', 0, `the terminal stream of ${this.sandboxId} was cut off`, {
        cause: err,
      });
    }
    throw new ForkdApiError(
      'protocol_error',
      200,
      `the terminal stream of ${this.sandboxId} ended without an end line`,
    );
  }

  /** Bytes (or text, as UTF-8) to the terminal, in order; resolves once the guest took them. */
  async sendInput(pid: number, data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    await this.t.buffer({
      method: 'POST',
      path: this.#path(pid, 'input'),
      json: { data: bytes.toString('base64') },
      timeoutMs: 60_000,
    });
  }

  /** The terminal's new size; the process gets SIGWINCH. */
  async resize(pid: number, size: PtySize): Promise<void> {
    await this.t.buffer({
      method: 'POST',
      path: this.#path(pid, 'resize'),
      json: { cols: size.cols, rows: size.rows },
    });
  }

  /** SIGKILL to the process group; false when no such process (any more). */
  async kill(pid: number): Promise<boolean> {
    try {
      await this.t.buffer({ method: 'POST', path: this.#path(pid, 'signal'), json: { signal: 'SIGKILL' } });
      return true;
    } catch (err) {
      if (err instanceof ForkdApiError && err.code === 'not_found') return false;
      throw err;
    }
  }
}
