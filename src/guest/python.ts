// The persistent Python worker: started by `warm` (so the snapshot holds a process that has
// already imported numpy & co.) or lazily by the first python eval. Requests go one at a time;
// a timeout first sends SIGINT (KeyboardInterrupt: the state survives), then SIGKILL if the
// worker does not come back, after which the next call starts a fresh one and re-imports.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  LineSplitter,
  MAX_EVAL_CAPTURE_BYTES,
  MAX_EVAL_VALUE_BYTES,
  OPS,
  isPlainObject,
  type EvalResult,
} from '../protocol/index.js';
import { errnoOf, GuestError } from './errors.js';
import type { GuestLog } from './log.js';
import { PYTHON_WORKER_SOURCE } from './python-worker.js';

const REPLY_LIMIT_BYTES = 8 * 1024 * 1024;
const INTERRUPT_GRACE_MS = 2000;

interface Pending {
  resolve(result: unknown): void;
  reject(err: Error): void;
}

export class PythonWorker {
  private proc: ChildProcess | undefined;
  private starting: Promise<ChildProcess> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();
  /** Modules to import again if the worker has to be restarted. */
  private readonly preload = new Set<string>();

  constructor(
    private readonly python: string,
    private readonly log: GuestLog,
  ) {}

  warm(modules: readonly string[]): Promise<{ version: string; modules: string[] }> {
    return this.serialized(async () => {
      const proc = await this.ensure();
      const result = await this.call(proc, { op: 'import', modules }, 600_000);
      // Remembered only once importable, so a typo does not break every later restart.
      for (const m of modules) this.preload.add(m);
      return { version: String((result as { version?: unknown }).version), modules: [...this.preload] };
    });
  }

  evaluate(code: string, timeoutMs: number, signal: AbortSignal): Promise<EvalResult> {
    return this.serialized(async () => {
      const proc = await this.ensure();
      const raw = await this.call(proc, { op: 'eval', code }, timeoutMs, signal);
      return OPS.eval.result(raw, 'python result');
    });
  }

  /** Reseeds `random` (and numpy's global generator) after identity; no-op without a worker. */
  async reseed(): Promise<void> {
    if (!this.proc) return;
    await this.serialized(async () => {
      if (this.proc) await this.call(this.proc, { op: 'reseed' }, 10_000);
    });
  }

  close(): void {
    this.proc?.kill('SIGKILL');
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async ensure(): Promise<ChildProcess> {
    if (this.proc) return this.proc;
    this.starting ??= this.start().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async start(): Promise<ChildProcess> {
    const args = ['-u', '-c', PYTHON_WORKER_SOURCE, String(MAX_EVAL_CAPTURE_BYTES), String(MAX_EVAL_VALUE_BYTES)];
    const proc = spawn(this.python, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      await once(proc, 'spawn');
    } catch (err) {
      if (errnoOf(err) === 'ENOENT')
        throw new GuestError('unsupported', `python eval needs ${this.python}, which this image does not have`);
      throw new GuestError('internal', `starting ${this.python}: ${String(err)}`);
    }
    const splitter = new LineSplitter(
      REPLY_LIMIT_BYTES,
      (line) => this.onReply(line),
      (big) => this.log.error('python worker reply over the limit dropped', { bytes: big.bytes }),
    );
    proc.stdout?.on('data', (chunk: Buffer) => splitter.push(chunk));
    const errLines = new LineSplitter(
      64 * 1024,
      (line) => this.log.info('python', { line: line.toString('utf8') }),
      () => undefined,
    );
    proc.stderr?.on('data', (chunk: Buffer) => errLines.push(chunk));
    proc.stdin?.on('error', () => undefined);
    proc.once('exit', (code, signal) => {
      this.log.warn('python worker exited', { code, signal });
      if (this.proc === proc) this.proc = undefined;
      const err = new GuestError(
        'internal',
        `python worker exited (code ${code}, signal ${signal}); its state is lost`,
      );
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
    this.proc = proc;
    this.log.info('python worker started', { pid: proc.pid });
    if (this.preload.size > 0) await this.call(proc, { op: 'import', modules: [...this.preload] }, 600_000);
    return proc;
  }

  private onReply(line: Buffer): void {
    let reply: unknown;
    try {
      reply = JSON.parse(line.toString('utf8'));
    } catch {
      this.log.error('python worker wrote a non-JSON line', { bytes: line.length });
      return;
    }
    if (!isPlainObject(reply) || typeof reply.id !== 'number') return;
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (reply.ok === true) return p.resolve(reply.result);
    const error = isPlainObject(reply.error) ? reply.error : {};
    const name = typeof error.name === 'string' ? error.name : 'Error';
    const message = typeof error.message === 'string' ? error.message : 'python worker error';
    p.reject(new GuestError(name === 'ModuleNotFoundError' ? 'not_found' : 'internal', `python ${name}: ${message}`));
  }

  /** One request; on timeout or cancel: SIGINT, then SIGKILL after a grace period. */
  private call(
    proc: ChildProcess,
    req: Record<string, unknown>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      let stopped: GuestError | undefined;
      let grace: NodeJS.Timeout | undefined;
      const stop = (err: GuestError): void => {
        if (stopped) return;
        stopped = err;
        proc.kill('SIGINT');
        grace = setTimeout(() => proc.kill('SIGKILL'), INTERRUPT_GRACE_MS);
      };
      const timer = setTimeout(
        () => stop(new GuestError('timeout', `python eval ran over ${timeoutMs} ms; interrupted`)),
        timeoutMs,
      );
      const onAbort = (): void =>
        stop(
          signal?.reason instanceof GuestError ? signal.reason : new GuestError('cancelled', 'python eval cancelled'),
        );
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (): void => {
        clearTimeout(timer);
        clearTimeout(grace);
        signal?.removeEventListener('abort', onAbort);
      };
      this.pending.set(id, {
        resolve: (result) => {
          settle();
          if (stopped) reject(stopped);
          else resolve(result);
        },
        reject: (err) => {
          settle();
          reject(stopped ?? err);
        },
      });
      proc.stdin?.write(`${JSON.stringify({ id, ...req })}\n`);
    });
  }
}
