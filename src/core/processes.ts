// Interactive processes of one live sandbox (issue 13): started with a pid announced before any
// output, stdin kept open for input, optionally on a pseudo-terminal with resize; any number of
// consumers follow a process's events (start() from its beginning, connect() from now on).
// A process outlives its consumers: only a signal, its timeout or the sandbox's release end it.
import { ForkdError } from '../lib/errors.js';
import type { AgentClient } from '../agent/client.js';
import type { Logger } from '../lib/log.js';

export interface StartProcessRequest {
  /** Exactly one of argv and shell. */
  argv?: string[];
  shell?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Run on a pseudo-terminal (stdout and stderr merged as 'pty' output). */
  pty?: { cols: number; rows: number };
  /** Keep stdin open for sendInput/closeInput (default false: stdin is empty). */
  stdin?: boolean;
  /** The whole process group is killed at it; 0 or absent = no timeout. */
  timeoutMs?: number;
  /** The caller's label, shown by list(). */
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

export type ProcessSignal = 'SIGKILL' | 'SIGTERM' | 'SIGINT' | 'SIGHUP';

export class SandboxProcesses {
  constructor(
    private readonly agent: AgentClient,
    private readonly log: Logger,
  ) {}

  start(_req: StartProcessRequest, _signal?: AbortSignal): Promise<ProcessStream> {
    return Promise.reject(this.#unimplemented());
  }

  /** Events from now on, then 'end'; ForkdError not_found for an unknown pid. */
  connect(pid: number): ProcessStream {
    throw new ForkdError('not_found', `no process with pid ${pid} in this sandbox`);
  }

  list(): ProcessInfo[] {
    return [];
  }

  sendInput(_pid: number, _data: Buffer): Promise<void> {
    return Promise.reject(this.#unimplemented());
  }

  closeInput(_pid: number): Promise<void> {
    return Promise.reject(this.#unimplemented());
  }

  signal(_pid: number, _signal: ProcessSignal): Promise<void> {
    return Promise.reject(this.#unimplemented());
  }

  resize(_pid: number, _cols: number, _rows: number): Promise<void> {
    return Promise.reject(this.#unimplemented());
  }

  /** Ends every process's event streams; the sandbox (and so the processes) is going away. */
  dispose(_reason: string): void {}

  #unimplemented(): ForkdError {
    this.log.debug('processes: not implemented yet', { socket: this.agent.socketPath });
    return new ForkdError('unavailable', 'interactive processes are not implemented yet');
  }
}
