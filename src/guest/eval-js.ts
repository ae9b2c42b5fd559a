// JavaScript eval in ONE persistent `vm` context kept for the agent's life, so a snapshot
// captures warmed state and every child continues from it.
//
// The rule users see: the code runs as a script in that context. The value of its last
// expression is returned (a returned Promise is awaited); `var`, `let`, `const`, functions
// and `globalThis.x` persist across calls. Code using top-level `await` cannot be a script:
// it runs inside an async function, its last expression statement still being returned, but
// its declarations are then local to that call: keep state on `globalThis` there.
//
// console output is captured per call through AsyncLocalStorage, so concurrent evals and
// their timers and promises each get their own stdout / stderr.
import { AsyncLocalStorage } from 'node:async_hooks';
import { Console } from 'node:console';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import vm from 'node:vm';
// Module by module, not the protocol index: the JS worker's bundle carries only what it runs.
import { MAX_EVAL_CAPTURE_BYTES } from '../protocol/limits.js';
import { describeError, TextCapture, toValueJson, type EvalError } from './capture.js';
import { errnoOf, GuestError } from './errors.js';

interface Capture {
  stdout: TextCapture;
  stderr: TextCapture;
}

/** The result of one eval, as protocol 2's `eval` op returns it. */
export type EvalReply = {
  /** The value as JSON text (`undefined` -> `null`, non-JSON -> its String()). */
  valueJson: string;
  stdout: string;
  stderr: string;
  truncated: boolean;
  error?: EvalError;
};

export class JsEvaluator {
  private context: vm.Context | undefined;
  private readonly als = new AsyncLocalStorage<Capture>();
  /** Rejects the pending (awaited) part of the evals in flight. */
  private readonly stoppers = new Set<(err: GuestError) => void>();

  /** `random` backs the context's Math.random; share it to back other generators too. */
  constructor(private readonly random = new UrandomPool()) {}

  /** Creates the context now, so it is part of the snapshot. */
  warm(): void {
    this.ctx();
  }

  /** Called after `identity`: random state copied from the snapshot must not be reused. */
  reseed(): void {
    this.random.reset();
  }

  /**
   * Stops the evals in flight that are awaiting (their promise part) with GuestError
   * `cancelled`; their later output is dropped. A synchronous part runs on to its `timeout`:
   * vm's `breakOnSigint` could stop it, but costs two thirds of a small eval's time (SIGINT
   * listeners are removed and re-added around every run), which TCG multiplies.
   */
  cancel(): void {
    for (const stop of this.stoppers) stop(new GuestError('cancelled', 'eval cancelled'));
  }

  /** Runs `code`; throws GuestError `timeout` or `cancelled`, reports everything else in `error`. */
  evaluate(code: string, timeoutMs: number): Promise<EvalReply> {
    const capture: Capture = {
      stdout: new TextCapture(MAX_EVAL_CAPTURE_BYTES),
      stderr: new TextCapture(MAX_EVAL_CAPTURE_BYTES),
    };
    return this.als.run(capture, async () => {
      let outcome: ReturnType<typeof toValueJson>;
      try {
        outcome = toValueJson(await this.run(code, timeoutMs));
      } catch (err) {
        if (err instanceof GuestError) throw err;
        const errno = errnoOf(err);
        if (errno === 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw new GuestError('timeout', `eval ran over ${timeoutMs} ms`);
        outcome = { error: describeError(err) };
      }
      return {
        valueJson: 'json' in outcome ? outcome.json : 'null',
        stdout: capture.stdout.text(),
        stderr: capture.stderr.text(),
        truncated: capture.stdout.truncated || capture.stderr.truncated,
        ...('error' in outcome ? { error: outcome.error } : {}),
      };
    });
  }

  private async run(code: string, timeoutMs: number): Promise<unknown> {
    const context = this.ctx();
    const script = compile(code);
    // `timeout` bounds the synchronous part (an endless loop); the race bounds the rest.
    const value: unknown = script.runInContext(context, { timeout: timeoutMs });
    if (!isThenable(value)) return value;
    let timer: NodeJS.Timeout | undefined;
    let stop: ((err: GuestError) => void) | undefined;
    const stopped = new Promise<never>((_, reject) => {
      stop = reject;
      timer = setTimeout(
        () => reject(new GuestError('timeout', `eval did not settle within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    this.stoppers.add(stop!);
    try {
      return await Promise.race([value, stopped]);
    } finally {
      clearTimeout(timer);
      this.stoppers.delete(stop!);
    }
  }

  private ctx(): vm.Context {
    if (this.context) return this.context;
    const target = (stream: 'stdout' | 'stderr') =>
      ({
        write: (chunk: string | Uint8Array) => (this.als.getStore()?.[stream].write(String(chunk)), true),
      }) as unknown as NodeJS.WritableStream;
    const globals: Record<string, unknown> = {
      console: new Console({ stdout: target('stdout'), stderr: target('stderr'), ignoreErrors: false }),
      require: createRequire(join(process.cwd(), 'forkd-eval.js')),
      process,
      Buffer,
      URL,
      URLSearchParams,
      TextEncoder,
      TextDecoder,
      AbortController,
      AbortSignal,
      EventTarget,
      Event,
      setTimeout,
      clearTimeout,
      setInterval,
      clearInterval,
      setImmediate,
      clearImmediate,
      queueMicrotask,
      structuredClone,
      performance,
      atob,
      btoa,
      fetch: globalThis.fetch,
      crypto: globalThis.crypto,
    };
    const context = vm.createContext(globals, { name: 'forkd-eval' });
    // V8 seeds Math.random once per context: forked children would all draw the same
    // sequence. Back it by the kernel CRNG, which `identity` reseeds in every child.
    (vm.runInContext('Math', context) as { random: () => number }).random = () => this.random.next();
    this.context = context;
    return context;
  }
}

const FILENAME = 'forkd-eval.js';
/** Statement boundaries tried when looking for the last expression of await code. */
const MAX_SPLIT_CANDIDATES = 256;

function compile(code: string): vm.Script {
  try {
    return new vm.Script(code, { filename: FILENAME });
  } catch (err) {
    if (!(isSyntaxError(err) && /\bawait\b/.test(err.message))) throw err;
  }
  return compileAsync(code);
}

/**
 * Wraps await code in an async function returning its last expression. Without a parser we
 * try the boundaries after each `;` or newline, earliest first: the first split where the
 * head compiles as statements and the tail as one expression gives the longest such tail
 * (so `a\n+ b` stays one expression). If none does, the code runs as a plain body.
 */
function compileAsync(code: string): vm.Script {
  const body = code.replace(/[\s;]+$/, '');
  const splits = [0];
  for (let i = 0; i < body.length; i++) if (body[i] === ';' || body[i] === '\n') splits.push(i + 1);
  for (const at of splits.slice(-MAX_SPLIT_CANDIDATES)) {
    const head = body.slice(0, at);
    const tail = body.slice(at);
    if (tail.trim() === '') continue;
    try {
      return new vm.Script(`(async () => {\n${head}\nreturn (\n${tail}\n);\n})()`, { filename: FILENAME });
    } catch {
      // not a boundary between statements and a final expression
    }
  }
  return new vm.Script(`(async () => {\n${code}\n})()`, { filename: FILENAME });
}

function isSyntaxError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'SyntaxError';
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** 53-bit doubles from /dev/urandom, read 4 KiB at a time; `reset()` drops what is buffered. */
export class UrandomPool {
  private pool = Buffer.alloc(0);
  private offset = 0;

  constructor(private readonly devicePath = '/dev/urandom') {}

  reset(): void {
    this.pool = Buffer.alloc(0);
    this.offset = 0;
  }

  next(): number {
    if (this.offset + 7 > this.pool.length) this.refill();
    const hi = this.pool.readUIntBE(this.offset, 3) & 0x1fffff; // 21 bits
    const lo = this.pool.readUInt32BE(this.offset + 3); // 32 bits
    this.offset += 7;
    return (hi * 2 ** 32 + lo) / 2 ** 53;
  }

  private refill(): void {
    const pool = Buffer.alloc(4096);
    try {
      const fd = openSync(this.devicePath, 'r');
      try {
        readSync(fd, pool, 0, pool.length, null);
      } finally {
        closeSync(fd);
      }
    } catch {
      // no /dev/urandom: Node's own CSPRNG is the next best seed
      randomFillSync(pool);
    }
    this.pool = pool;
    this.offset = 0;
  }
}
