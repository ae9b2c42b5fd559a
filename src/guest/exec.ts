// Runs a command in its own process group (spawn detached = setsid), pumps its stdout and
// stderr into a sink, and kills the WHOLE group on timeout or cancel: `sh -c 'a & b'` leaves
// no orphan behind. Shared by foreground exec (sink = stream frames to the host) and
// background processes (sink = ring buffers).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { STREAM_CHUNK_BYTES, type ExecParams } from '../protocol/index.js';
import { errnoOf, GuestError } from './errors.js';

export type OutputSink = (kind: 'stdout' | 'stderr', chunk: Buffer) => Promise<void> | void;

export interface ChildExit {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
}

export interface RunningChild {
  pid: number;
  /** Settles when the process exited and its output was drained. */
  done: Promise<ChildExit>;
}

/** After the leader exits, output is drained until the pipes close or stay quiet this long
 *  (a daemonized grandchild may hold them open forever). */
const DRAIN_IDLE_MS = 250;

export function argvOf(p: ExecParams): string[] {
  if ((p.argv === undefined) === (p.shell === undefined)) {
    throw new GuestError('bad_request', 'exec needs exactly one of `argv` or `shell`');
  }
  if (p.shell !== undefined) return ['/bin/sh', '-c', p.shell];
  if (!p.argv || p.argv.length === 0 || p.argv[0] === '') throw new GuestError('bad_request', 'exec argv is empty');
  return p.argv;
}

export function signalNumber(name: string): number {
  const value = (osConstants.signals as Record<string, number | undefined>)[name];
  if (value === undefined) throw new GuestError('bad_request', `unknown signal ${name}`);
  return value;
}

/** Signals every process of the group led by `pid`; false if none was left. */
export function killGroup(pid: number, signal: NodeJS.Signals | number): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ESRCH') return false;
    throw err;
  }
}

export async function startChild(
  p: ExecParams,
  sink: OutputSink,
  opts: { timeoutMs: number | undefined; signal?: AbortSignal },
): Promise<RunningChild> {
  const [file, ...args] = argvOf(p);
  const stdin = p.stdin === undefined ? undefined : Buffer.from(p.stdin, 'base64');
  const child = spawn(file as string, args, {
    detached: true,
    cwd: p.cwd,
    env: p.env ? { ...process.env, ...p.env } : process.env,
    stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  exited.catch(() => undefined);
  try {
    await once(child, 'spawn');
  } catch (err) {
    throw new GuestError(errnoOf(err) === 'ENOENT' ? 'not_found' : 'exec_failed', `spawn ${file}: ${String(err)}`);
  }
  const pid = child.pid as number;
  const started = performance.now();
  if (stdin && child.stdin) {
    child.stdin.on('error', () => undefined); // EPIPE when the command does not read its input
    child.stdin.end(stdin);
  }
  return { pid, done: supervise(child, pid, started, exited, sink, opts) };
}

async function supervise(
  child: ChildProcess,
  pid: number,
  started: number,
  exited: Promise<[number | null, NodeJS.Signals | null]>,
  sink: OutputSink,
  opts: { timeoutMs: number | undefined; signal?: AbortSignal },
): Promise<ChildExit> {
  let timedOut = false;
  const killAll = (): void => void killGroup(pid, 'SIGKILL');
  const timer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          killAll();
        }, opts.timeoutMs);
  opts.signal?.addEventListener('abort', killAll, { once: true });
  const activity = { busy: 0, lastAt: performance.now() };
  const pumps = Promise.all([
    pump(child.stdout, 'stdout', sink, activity),
    pump(child.stderr, 'stderr', sink, activity),
  ]);
  try {
    const [code, signal] = await exited;
    await drain(pumps, [child.stdout, child.stderr], activity);
    return { exitCode: code, signal, timedOut, durationMs: performance.now() - started };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', killAll);
  }
}

async function pump(
  stream: Readable | null,
  kind: 'stdout' | 'stderr',
  sink: OutputSink,
  activity: { busy: number; lastAt: number },
): Promise<void> {
  if (!stream) return;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      activity.busy++;
      try {
        for (let off = 0; off < chunk.length; off += STREAM_CHUNK_BYTES) {
          await sink(kind, chunk.subarray(off, off + STREAM_CHUNK_BYTES));
        }
      } finally {
        activity.busy--;
        activity.lastAt = performance.now();
      }
    }
  } catch {
    // Destroyed by drain() below: output of a lingering grandchild is not ours to wait for.
  }
}

async function drain(
  pumps: Promise<unknown>,
  streams: Array<Readable | null>,
  activity: { busy: number; lastAt: number },
): Promise<void> {
  let finished = false;
  void pumps.then(() => (finished = true));
  while (!finished) {
    await Promise.race([pumps, sleep(DRAIN_IDLE_MS)]);
    if (!finished && activity.busy === 0 && performance.now() - activity.lastAt >= DRAIN_IDLE_MS) {
      for (const s of streams) s?.destroy();
      await pumps;
      return;
    }
  }
}
