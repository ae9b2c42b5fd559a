// `sandbox.commands`: run a command, streamed (POST /exec/stream, NDJSON), in the shape of
// E2B's: `run` resolves with the result of an exit 0 and throws CommandExitError otherwise
// (unless `throwOnNonZeroExit: false`); `background: true` resolves with a handle at once.
import { CommandExitError, ForkdApiError, type CommandResult } from './errors.js';
import { ndjsonLines, type Transport } from './http.js';
import type { ExecStreamLine } from './types.js';
import { EXEC_TIMEOUT_SECS } from './contract.js';

/** E2B's default command timeout. */
export const DEFAULT_COMMAND_TIMEOUT_MS = EXEC_TIMEOUT_SECS.default * 1000;
/** The API's longest command (timeout_secs 86400): what `timeoutMs: 0` (no timeout) gets. */
const MAX_COMMAND_SECS = 86_400;

export interface RunOptions {
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
  /** Environment variables of this command, over the sandbox's `envs`. */
  envs?: Record<string, string>;
  /** @deprecated the old name of `envs`. */
  env?: Record<string, string>;
  cwd?: string;
  /** Text given to the command's stdin (forkd; E2B's interactive `stdin: true` is not this). */
  stdin?: string;
  /** The command's timeout (ms, default 60 000; 0: the API's longest, 24 h): its process group is killed. */
  timeoutMs?: number;
  /** Bound of the HTTP call (default: the command's timeout plus 30 s). */
  requestTimeoutMs?: number;
  signal?: AbortSignal;
  /** Resolve with a handle at once; `wait()` gives the result. */
  background?: boolean;
  /** Default true: a command that does not exit 0 throws CommandExitError. false: resolve with its result. */
  throwOnNonZeroExit?: boolean;
}

export interface CommandHandle {
  /** The result (throws CommandExitError as `run` does). */
  wait(): Promise<CommandResult>;
  /** Cancels the command (its stream is closed, so the daemon kills it); false if it had already ended. */
  kill(): Promise<boolean>;
  /** Output so far. */
  readonly stdout: string;
  readonly stderr: string;
}

export class Commands {
  constructor(
    private readonly t: Transport,
    private readonly sandboxId: string,
    private readonly baseEnvs: Record<string, string>,
  ) {}

  /**
   * A string goes to `/bin/sh -c` as ONE argument (the guest's shell parses it); an array is
   * argv with no shell. Output streams to onStdout/onStderr as it comes.
   */
  run(cmd: string | string[], opts: RunOptions & { background: true }): Promise<CommandHandle> & CommandHandle;
  run(cmd: string | string[], opts?: RunOptions & { background?: false }): Promise<CommandResult>;
  run(
    cmd: string | string[],
    opts: RunOptions = {},
  ): Promise<CommandResult> | (Promise<CommandHandle> & CommandHandle) {
    if (!opts.background) return this.#finish(this.#stream(cmd, opts, { stdout: '', stderr: '' }), opts);
    const ctl = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, ctl.signal]) : ctl.signal;
    const out = { stdout: '', stderr: '' };
    let ended = false;
    const p = this.#stream(cmd, { ...opts, signal }, out).finally(() => (ended = true));
    p.catch(() => undefined); // only marks it handled: wait() returns p, and its error, to the caller
    const wait = (): Promise<CommandResult> => this.#finish(p, opts);
    const kill = (): Promise<boolean> => {
      const was = !ended;
      ctl.abort(new Error('killed'));
      return Promise.resolve(was);
    };
    /** The handle's members, defined once: the resolved handle and the returned promise both carry them. */
    const withHandle = <T extends object>(target: T): T & CommandHandle =>
      Object.defineProperties(target, {
        wait: { value: wait, enumerable: true },
        kill: { value: kill, enumerable: true },
        stdout: { get: () => out.stdout, enumerable: true },
        stderr: { get: () => out.stderr, enumerable: true },
      }) as T & CommandHandle;
    const handle: CommandHandle = withHandle({});
    // E2B resolves `run(..., { background: true })` with the handle; the handle's methods on
    // the returned value itself keep the old synchronous forkd form working (deprecated).
    return withHandle(Promise.resolve(handle));
  }

  async #finish(p: Promise<CommandResult>, opts: RunOptions): Promise<CommandResult> {
    const r = await p;
    if (r.exitCode === 0 && !r.timedOut) return r;
    if (opts.throwOnNonZeroExit === false) return r;
    throw new CommandExitError(r);
  }

  async #stream(
    cmd: string | string[],
    opts: RunOptions,
    out: { stdout: string; stderr: string },
  ): Promise<CommandResult> {
    if (typeof opts.stdin === 'boolean')
      throw new ForkdApiError(
        'invalid_argument',
        0,
        'stdin must be the input text; an interactive stdin (E2B stdin: true) is not supported by commands.run',
      );
    const ms = opts.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const timeoutSecs = ms === 0 ? MAX_COMMAND_SECS : Math.min(MAX_COMMAND_SECS, Math.max(1, Math.ceil(ms / 1000)));
    const envs = { ...this.baseEnvs, ...opts.env, ...opts.envs };
    const body = {
      ...(typeof cmd === 'string' ? { cmd } : { args: cmd }),
      ...(Object.keys(envs).length > 0 ? { env: envs } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
      timeout_secs: timeoutSecs,
    };
    const { res } = await this.t.send({
      method: 'POST',
      path: `/v1/sandboxes/${encodeURIComponent(this.sandboxId)}/exec/stream`,
      json: body,
      signal: opts.signal,
      // The guest kills the command at timeout_secs; the call gets a margin to report it.
      timeoutMs: opts.requestTimeoutMs ?? timeoutSecs * 1000 + 30_000,
    });
    try {
      for await (const raw of ndjsonLines(res)) {
        const line = raw as ExecStreamLine;
        if (line.type === 'stdout') {
          out.stdout += line.data;
          opts.onStdout?.(line.data);
        } else if (line.type === 'stderr') {
          out.stderr += line.data;
          opts.onStderr?.(line.data);
        } else if (line.type === 'error') {
          throw new ForkdApiError(line.code, 200, line.error);
        } else if (line.type === 'exit') {
          return {
            exitCode: line.exit_code,
            signal: line.signal,
            stdout: out.stdout,
            stderr: out.stderr,
            truncated: line.truncated,
            timedOut: line.timed_out,
            durationMs: line.duration_ms,
          };
        }
      }
    } catch (err) {
      if (err instanceof ForkdApiError) throw err;
      if (opts.signal?.aborted)
        throw new ForkdApiError('aborted', 0, `command in ${this.sandboxId} was aborted`, { cause: err });
      throw new ForkdApiError(
        'client_timeout',
        0,
        `streaming exec in ${this.sandboxId} from ${this.t.url} was cut off`,
        { cause: err },
      );
    } finally {
      res.destroy();
    }
    throw new ForkdApiError('protocol_error', 200, `streaming exec in ${this.sandboxId} ended without an exit line`);
  }
}
