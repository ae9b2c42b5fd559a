// Background processes: `exec` with `background: true` returns a pid at once; the output is
// drained into ring buffers (the newest BACKGROUND_OUTPUT_BYTES per stream win) so a chatty
// daemon never blocks on a full pipe nor fills guest memory. `wait` hands the buffered output
// over as stream frames and forgets the process; `kill` signals its whole group.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BACKGROUND_OUTPUT_BYTES,
  DEFAULT_WAIT_TIMEOUT_MS,
  MAX_BACKGROUND_PROCESSES,
  STREAM_CHUNK_BYTES,
  type ExecDone,
  type ExecParams,
} from '../protocol/index.js';
import { GuestError } from './errors.js';
import { killGroup, signalNumber, startChild, type ChildExit } from './exec.js';
import type { RequestContext } from './session.js';

export class Ring {
  private chunks: Buffer[] = [];
  private bytes = 0;
  dropped = false;

  constructor(private readonly capacity: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(Buffer.from(chunk));
    this.bytes += chunk.length;
    while (this.bytes > this.capacity) {
      const first = this.chunks[0] as Buffer;
      const excess = this.bytes - this.capacity;
      this.dropped = true;
      if (first.length <= excess) {
        this.chunks.shift();
        this.bytes -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.bytes -= excess;
      }
    }
  }

  contents(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

interface Background {
  pid: number;
  stdout: Ring;
  stderr: Ring;
  exit: ChildExit | undefined;
  done: Promise<ChildExit>;
}

export class ProcessTable {
  private readonly procs = new Map<number, Background>();

  async start(p: ExecParams): Promise<{ pid: number }> {
    this.makeRoom();
    const stdout = new Ring(BACKGROUND_OUTPUT_BYTES);
    const stderr = new Ring(BACKGROUND_OUTPUT_BYTES);
    const child = await startChild(p, (kind, chunk) => (kind === 'stdout' ? stdout : stderr).push(chunk), {
      timeoutMs: p.timeoutMs,
    });
    const entry: Background = { pid: child.pid, stdout, stderr, exit: undefined, done: child.done };
    void child.done.then((exit) => (entry.exit = exit));
    this.procs.set(child.pid, entry);
    return { pid: child.pid };
  }

  kill(pid: number, signal: string | undefined): { signalled: boolean } {
    const entry = this.get(pid);
    if (entry.exit) return { signalled: false };
    return { signalled: killGroup(pid, signalNumber(signal ?? 'SIGKILL')) };
  }

  async wait(pid: number, timeoutMs: number | undefined, ctx: RequestContext): Promise<ExecDone> {
    const entry = this.get(pid);
    const limit = timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
    const timer = new AbortController();
    const exit = await Promise.race([
      entry.done,
      sleep(limit, undefined, { signal: AbortSignal.any([timer.signal, ctx.signal]) }).then(
        () => {
          throw new GuestError('timeout', `process ${pid} still running after ${limit} ms`);
        },
        (err: unknown) => {
          if (ctx.signal.aborted) throw ctx.signal.reason;
          throw err;
        },
      ),
    ]).finally(() => timer.abort());
    if (!this.procs.delete(pid)) throw new GuestError('not_found', `process ${pid} was already waited for`);
    await sendBuffered(ctx, 'stdout', entry.stdout.contents());
    await sendBuffered(ctx, 'stderr', entry.stderr.contents());
    return { ...exit, truncated: entry.stdout.dropped || entry.stderr.dropped };
  }

  /** Kills every background group (agent shutdown; tests). */
  killAll(): void {
    for (const entry of this.procs.values()) if (!entry.exit) killGroup(entry.pid, 'SIGKILL');
  }

  private get(pid: number): Background {
    const entry = this.procs.get(pid);
    if (!entry) throw new GuestError('not_found', `no background process with pid ${pid}`);
    return entry;
  }

  /** Forgets the oldest exited process nobody waited for; refuses when all are running. */
  private makeRoom(): void {
    if (this.procs.size < MAX_BACKGROUND_PROCESSES) return;
    for (const [pid, entry] of this.procs) {
      if (entry.exit) {
        this.procs.delete(pid);
        return;
      }
    }
    throw new GuestError('busy', `${MAX_BACKGROUND_PROCESSES} background processes are running; kill or wait for one`);
  }
}

async function sendBuffered(ctx: RequestContext, kind: 'stdout' | 'stderr', data: Buffer): Promise<void> {
  for (let off = 0; off < data.length; off += STREAM_CHUNK_BYTES) {
    await ctx.stream(kind, data.subarray(off, off + STREAM_CHUNK_BYTES));
  }
}
