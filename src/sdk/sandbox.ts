// `Sandbox`, in the shape of E2B's js-sdk: create/connect, commands.run (streamed), eval,
// files, branch, kill, and `await using` disposal. A thin object over `Controller`.
import { Controller, type ControllerOptions } from './controller.js';
import { ForkdApiError } from './errors.js';
import { ndjsonLines, type CallOptions } from './http.js';
import type {
  BranchResult,
  EgressPolicy,
  EvalLanguage,
  EvalResult,
  ExecStreamLine,
  FileList,
  SandboxInfo,
  WriteFileResult,
} from './types.js';

export interface SandboxCreateOptions extends ControllerOptions, CallOptions {
  /** Snapshot tag to restore. */
  snapshot: string;
  memoryLimitMiB?: number;
  /** CPUs (0.5 = half of one): the sandbox cgroup's CPU quota. */
  cpuLimit?: number;
  /** pids.max of the sandbox cgroup (bounds QEMU's threads, not guest processes; >= 16). */
  pidsLimit?: number;
  ttlSecs?: number;
  metadata?: Record<string, string>;
  perChildNetns?: boolean;
  /** Needs `perChildNetns: true`; default: the daemon's --default-egress (deny unless set). */
  egress?: EgressPolicy;
  /** Reuse a Controller (its url/token/ca) instead of building one from the options. */
  controller?: Controller;
}

export interface CommandResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
  durationMs: number;
}

export interface RunOptions extends CallOptions {
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string;
  /**
   * Return at once with a handle; the command runs while the handle's `wait()` streams it.
   * Killing the handle (or aborting `signal`) closes the stream, which cancels the command.
   */
  background?: boolean;
}

export interface CommandHandle {
  wait(): Promise<CommandResult>;
  kill(): void;
}

const enc = encodeURIComponent;

export class Sandbox {
  readonly id: string;
  readonly controller: Controller;
  /** The record as last fetched (create/connect/refresh). */
  info: SandboxInfo;

  private constructor(controller: Controller, info: SandboxInfo) {
    this.controller = controller;
    this.id = info.id;
    this.info = info;
  }

  static async create(opts: SandboxCreateOptions): Promise<Sandbox> {
    const controller = opts.controller ?? new Controller(opts);
    const res = await controller.sandboxes.spawn(
      {
        snapshot_tag: opts.snapshot,
        n: 1,
        ...(opts.ttlSecs !== undefined ? { ttl_secs: opts.ttlSecs } : {}),
        ...(opts.metadata !== undefined ? { metadata: opts.metadata } : {}),
        ...(opts.memoryLimitMiB !== undefined ? { memory_limit_mib: opts.memoryLimitMiB } : {}),
        ...(opts.cpuLimit !== undefined ? { cpu_limit: opts.cpuLimit } : {}),
        ...(opts.pidsLimit !== undefined ? { pids_limit: opts.pidsLimit } : {}),
        ...(opts.perChildNetns !== undefined ? { per_child_netns: opts.perChildNetns } : {}),
        ...(opts.egress !== undefined ? { egress: opts.egress } : {}),
      },
      { signal: opts.signal, timeoutMs: opts.timeoutMs },
    );
    const info = res.sandboxes[0];
    if (!info) throw new ForkdApiError('protocol_error', 201, 'the daemon created no sandbox');
    const sb = new Sandbox(controller, info);
    if (info.state !== 'running') {
      // Best effort: the daemon already holds it as failed; the boot failure below is the answer.
      await sb.kill().catch(() => undefined);
      throw new ForkdApiError(
        'boot_failed',
        201,
        `sandbox ${info.id} is ${info.state}: ${info.reason ?? 'no reason given'}`,
      );
    }
    return sb;
  }

  static async connect(
    id: string,
    opts: ControllerOptions & CallOptions & { controller?: Controller } = {},
  ): Promise<Sandbox> {
    const controller = opts.controller ?? new Controller(opts);
    return new Sandbox(
      controller,
      await controller.sandboxes.get(id, { signal: opts.signal, timeoutMs: opts.timeoutMs }),
    );
  }

  /** Wraps sandboxes returned by `controller.sandboxes.spawn`. */
  static of(controller: Controller, info: SandboxInfo): Sandbox {
    return new Sandbox(controller, info);
  }

  async refresh(o: CallOptions = {}): Promise<SandboxInfo> {
    this.info = await this.controller.sandboxes.get(this.id, o);
    return this.info;
  }

  private get t() {
    return this.controller.transport;
  }

  readonly commands = {
    /**
     * Runs a command: a string goes to `/bin/sh -c` as ONE argument (the guest's shell parses
     * it); an array is argv with no shell. Output streams to onStdout/onStderr as it comes.
     * `timeoutMs` bounds the guest command (its process group is killed) and the call.
     */
    run: ((cmd: string | string[], opts: RunOptions = {}): Promise<CommandResult> | CommandHandle => {
      const controller = new AbortController();
      const signal = opts.signal ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal;
      const p = this.stream(cmd, { ...opts, signal });
      if (!opts.background) return p;
      p.catch(() => undefined); // only marks it handled: wait() returns p, and its error, to the caller
      return { wait: () => p, kill: () => controller.abort(new Error('killed')) };
    }) as {
      (cmd: string | string[], opts: RunOptions & { background: true }): CommandHandle;
      (cmd: string | string[], opts?: RunOptions & { background?: false }): Promise<CommandResult>;
    },
  };

  private async stream(cmd: string | string[], opts: RunOptions): Promise<CommandResult> {
    const timeoutSecs = opts.timeoutMs === undefined ? 60 : Math.max(1, Math.ceil(opts.timeoutMs / 1000));
    const body = {
      ...(typeof cmd === 'string' ? { cmd } : { args: cmd }),
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
      timeout_secs: timeoutSecs,
    };
    const spec = {
      method: 'POST',
      path: `/v1/sandboxes/${enc(this.id)}/exec/stream`,
      json: body,
      signal: opts.signal,
      // The guest kills the command at timeout_secs; the call gets a margin to report it.
      timeoutMs: timeoutSecs * 1000 + 30_000,
    };
    const { res } = await this.t.send(spec);
    let stdout = '';
    let stderr = '';
    try {
      for await (const raw of ndjsonLines(res)) {
        const line = raw as ExecStreamLine;
        if (line.type === 'stdout' || line.type === 'stderr') {
          if (line.type === 'stdout') {
            stdout += line.data;
            opts.onStdout?.(line.data);
          } else {
            stderr += line.data;
            opts.onStderr?.(line.data);
          }
        } else if (line.type === 'error') {
          throw new ForkdApiError(line.code, 200, line.error);
        } else if (line.type === 'exit') {
          return {
            exitCode: line.exit_code,
            signal: line.signal,
            stdout,
            stderr,
            truncated: line.truncated,
            timedOut: line.timed_out,
            durationMs: line.duration_ms,
          };
        }
      }
    } catch (err) {
      if (err instanceof ForkdApiError) throw err;
      if (opts.signal?.aborted)
        throw new ForkdApiError('aborted', 0, `command in ${this.id} was aborted`, { cause: err });
      throw new ForkdApiError('client_timeout', 0, `streaming exec in ${this.id} from ${this.t.url} was cut off`, {
        cause: err,
      });
    } finally {
      res.destroy();
    }
    throw new ForkdApiError('protocol_error', 200, `streaming exec in ${this.id} ended without an exit line`);
  }

  /** Evaluates code in the guest's persistent JS context (default) or Python worker. */
  eval(code: string, opts: CallOptions & { language?: EvalLanguage; timeoutSecs?: number } = {}): Promise<EvalResult> {
    const timeoutSecs = opts.timeoutSecs ?? 30;
    return this.t.json({
      method: 'POST',
      path: `/v1/sandboxes/${enc(this.id)}/eval`,
      json: { code, language: opts.language ?? 'js', timeout_secs: timeoutSecs },
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? timeoutSecs * 1000 + 30_000,
    });
  }

  readonly files = {
    read: (path: string, o: CallOptions = {}): Promise<Buffer> =>
      this.t.buffer({ method: 'GET', path: `/v1/sandboxes/${enc(this.id)}/files`, query: { path }, ...o }),
    readText: async (path: string, o: CallOptions = {}): Promise<string> =>
      (await this.files.read(path, o)).toString('utf8'),
    write: (
      path: string,
      data: string | Uint8Array,
      o: CallOptions & { mode?: number } = {},
    ): Promise<WriteFileResult> =>
      this.t.json({
        method: 'PUT',
        path: `/v1/sandboxes/${enc(this.id)}/files`,
        query: { path, mode: o.mode === undefined ? undefined : o.mode.toString(8) },
        body: typeof data === 'string' ? Buffer.from(data) : data,
        signal: o.signal,
        timeoutMs: o.timeoutMs,
      }),
    list: (path: string, o: CallOptions = {}): Promise<FileList> =>
      this.t.json({ method: 'GET', path: `/v1/sandboxes/${enc(this.id)}/files/list`, query: { path }, ...o }),
    remove: async (path: string, o: CallOptions & { recursive?: boolean } = {}): Promise<void> => {
      await this.t.buffer({
        method: 'DELETE',
        path: `/v1/sandboxes/${enc(this.id)}/files`,
        query: { path, recursive: o.recursive ? 'true' : undefined },
        signal: o.signal,
        timeoutMs: o.timeoutMs,
      });
    },
  };

  /** Saves this running sandbox as a new snapshot tag (BRANCH). */
  branch(opts: CallOptions & { tag?: string; wait?: boolean; downtimeMs?: number } = {}): Promise<BranchResult> {
    return this.controller.branch(
      this.id,
      {
        ...(opts.tag !== undefined ? { tag: opts.tag } : {}),
        ...(opts.wait !== undefined ? { wait: opts.wait } : {}),
        ...(opts.downtimeMs !== undefined ? { downtime_ms: opts.downtimeMs } : {}),
      },
      { signal: opts.signal, timeoutMs: opts.timeoutMs },
    );
  }

  /** Stops the sandbox and removes it. Idempotent: a sandbox already gone is fine. */
  async kill(o: CallOptions = {}): Promise<void> {
    try {
      await this.controller.sandboxes.kill(this.id, o);
    } catch (err) {
      if (!(err instanceof ForkdApiError && err.code === 'not_found')) throw err;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}
