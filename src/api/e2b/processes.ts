// The interactive-process interface the E2B `process` service is written against (contract 1
// of issue 13: core's SandboxProcesses, one registry per live sandbox), and the registry this
// surface uses for a sandbox.
//
// INTERIM: until core's registry (src/core/processes.ts, agent-pty's work) is merged, this
// file carries a stand-in over the agent's foreground exec: output streams as it comes, a
// synthetic pid is announced at once, SIGKILL/SIGTERM cancel the exec (the guest kills the
// process group); stdin and PTY answer `unavailable`. Once core's registry lands,
// `processesOf` returns `live.processes` and the stand-in goes.
import type { LiveSandbox } from '../../core/controller/live.js';
import { MAX_EXEC_TIMEOUT_MS } from '../../core/api-surface.js';
import { ForkdError, messageOf } from '../../lib/errors.js';

export interface StartProcessRequest {
  argv?: string[];
  shell?: string;
  env?: Record<string, string>;
  cwd?: string;
  pty?: { cols: number; rows: number };
  stdin?: boolean;
  timeoutMs?: number;
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

export interface ProcessStream {
  pid: number;
  events: AsyncIterable<ProcessEvent>;
}

export type ProcessSignal = 'SIGKILL' | 'SIGTERM' | 'SIGINT' | 'SIGHUP';

export interface Processes {
  start(req: StartProcessRequest, signal?: AbortSignal): Promise<ProcessStream>;
  connect(pid: number): ProcessStream;
  list(): ProcessInfo[];
  sendInput(pid: number, data: Buffer): Promise<void>;
  closeInput(pid: number): Promise<void>;
  signal(pid: number, signal: ProcessSignal): Promise<void>;
  resize(pid: number, cols: number, rows: number): Promise<void>;
}

const registries = new WeakMap<LiveSandbox, Processes>();

export function processesOf(live: LiveSandbox): Processes {
  let p = registries.get(live);
  if (!p) registries.set(live, (p = new ExecProcesses(live)));
  return p;
}

/** Output held for a consumer that reads slower than the process writes; past it, output is dropped. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/** One consumer's events: a bounded queue read as an async iterable. */
class EventQueue implements AsyncIterable<ProcessEvent> {
  readonly #items: ProcessEvent[] = [];
  #bytes = 0;
  #ended = false;
  #wake: (() => void) | undefined;

  push(e: ProcessEvent): void {
    if (this.#ended) return;
    if (e.type === 'stdout' || e.type === 'stderr' || e.type === 'pty') {
      if (this.#bytes + e.data.length > MAX_BUFFERED_BYTES) return;
      this.#bytes += e.data.length;
    }
    this.#items.push(e);
    if (e.type === 'end') this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ProcessEvent> {
    for (;;) {
      const e = this.#items.shift();
      if (e) {
        if (e.type === 'stdout' || e.type === 'stderr' || e.type === 'pty') this.#bytes -= e.data.length;
        yield e;
        if (e.type === 'end') return;
        continue;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }
}

interface Running {
  info: ProcessInfo;
  consumers: Set<EventQueue>;
  abort: AbortController;
  killedBy: ProcessSignal | undefined;
}

class ExecProcesses implements Processes {
  #nextPid = 1;
  readonly #running = new Map<number, Running>();

  constructor(private readonly live: LiveSandbox) {}

  start(req: StartProcessRequest): Promise<ProcessStream> {
    if (req.pty || req.stdin)
      return Promise.reject(
        new ForkdError('unavailable', 'stdin and PTY processes need the agent support for interactive processes'),
      );
    const pid = this.#nextPid++;
    const info: ProcessInfo = {
      pid,
      ...(req.tag !== undefined ? { tag: req.tag } : {}),
      ...(req.argv ? { argv: req.argv } : {}),
      ...(req.shell !== undefined ? { shell: req.shell } : {}),
      env: req.env ?? {},
      ...(req.cwd !== undefined ? { cwd: req.cwd } : {}),
      pty: false,
    };
    const run: Running = { info, consumers: new Set(), abort: new AbortController(), killedBy: undefined };
    this.#running.set(pid, run);
    const first = new EventQueue();
    run.consumers.add(first);
    first.push({ type: 'start', pid });
    const emit = (e: ProcessEvent): void => {
      for (const q of run.consumers) q.push(e);
    };
    this.live.agent
      .exec(
        {
          ...(req.argv ? { argv: req.argv } : {}),
          ...(req.shell !== undefined ? { shell: req.shell } : {}),
          ...(req.env ? { env: req.env } : {}),
          ...(req.cwd ? { cwd: req.cwd } : {}),
          timeoutMs: req.timeoutMs ? Math.min(req.timeoutMs, MAX_EXEC_TIMEOUT_MS) : MAX_EXEC_TIMEOUT_MS,
        },
        {
          signal: run.abort.signal,
          maxOutputBytes: 0, // streamed to the consumers; no copy kept
          onStdout: (data) => emit({ type: 'stdout', data }),
          onStderr: (data) => emit({ type: 'stderr', data }),
        },
      )
      .then(
        (r) => emit({ type: 'end', exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut }),
        (err: unknown) =>
          emit(
            run.killedBy
              ? { type: 'end', exitCode: null, signal: run.killedBy, timedOut: false }
              : { type: 'end', exitCode: null, signal: null, timedOut: false, error: messageOf(err) },
          ),
      )
      .finally(() => this.#running.delete(pid));
    return Promise.resolve({ pid, events: first });
  }

  connect(pid: number): ProcessStream {
    const run = this.#get(pid);
    const q = new EventQueue();
    run.consumers.add(q);
    return { pid, events: q };
  }

  list(): ProcessInfo[] {
    return [...this.#running.values()].map((r) => r.info);
  }

  sendInput(pid: number): Promise<void> {
    this.#get(pid);
    return Promise.reject(new ForkdError('unavailable', 'sending input needs interactive process support'));
  }

  closeInput(pid: number): Promise<void> {
    this.#get(pid);
    return Promise.resolve(); // its stdin was never open
  }

  signal(pid: number, signal: ProcessSignal): Promise<void> {
    const run = this.#get(pid);
    run.killedBy = signal;
    run.abort.abort(new ForkdError('unavailable', `killed (${signal})`));
    return Promise.resolve();
  }

  resize(pid: number): Promise<void> {
    this.#get(pid);
    return Promise.reject(new ForkdError('invalid_state', `process ${pid} has no terminal`));
  }

  #get(pid: number): Running {
    const run = this.#running.get(pid);
    if (!run) throw new ForkdError('not_found', `no process with pid ${pid} in this sandbox`);
    return run;
  }
}
