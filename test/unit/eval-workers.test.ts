// The eval workers the native agent forwards eval frames to (docs/PROTOCOL.md, "Eval workers"),
// each spawned directly with frames on fds 3 and 4 and driven with src/protocol/wire.ts:
// dist/src/guest/js-worker.mjs (run `node scripts/bundle-guest.mjs` first) and
// src/guest/workers/py-worker.py, whose wire codec is also checked against wire.ts.
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { frameIdOf } from '../../src/guest/workers/channel.js';
import {
  DEFAULT_EVAL_TIMEOUT_MS,
  MAX_ERROR_MESSAGE_CHARS,
  MAX_EVAL_CAPTURE_BYTES,
  MAX_EVAL_CODE_BYTES,
  MAX_EVAL_VALUE_BYTES,
  MAX_EXEC_TIMEOUT_MS,
  MAX_FRAME_BYTES,
} from '../../src/protocol/limits.js';
import { LineSplitter } from '../../src/protocol/lines.js';
import {
  cobsEncode,
  decodeWireFrame,
  encodeWireFrame,
  type DecodedFrame,
  type WireRecord,
} from '../../src/protocol/wire.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const JS_WORKER = join(ROOT, 'dist/src/guest/js-worker.mjs');
const PY_WORKER = join(ROOT, 'src/guest/workers/py-worker.py');

function hasPython(module?: string): boolean {
  try {
    execFileSync('python3', ['-c', module ? `import ${module}` : 'pass'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const PYTHON = hasPython();
const NO_PYTHON = !PYTHON && 'python3 not installed';

// ---------------------------------------------------------------- a client speaking wire.ts

class WorkerClient {
  private nextId = 1;
  private readonly frames = new Map<number, DecodedFrame[]>();
  private readonly waiters = new Map<number, ((frame: DecodedFrame) => void)[]>();
  readonly violations: string[] = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly proc: ChildProcess,
    readonly input: Writable,
    readonly output: Readable,
  ) {
    const splitter = new LineSplitter(
      MAX_FRAME_BYTES,
      (line) => {
        try {
          this.onFrame(decodeWireFrame(line));
        } catch (err) {
          this.violations.push(String(err));
        }
      },
      (big) => this.violations.push(`oversized reply of ${big.bytes} bytes`),
    );
    output.on('data', (chunk: Buffer) => splitter.push(chunk));
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  }

  static spawn(command: string, args: string[]): WorkerClient {
    const proc = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit', 'pipe', 'pipe'] });
    return new WorkerClient(proc, proc.stdio[3] as Writable, proc.stdio[4] as Readable);
  }

  private onFrame(frame: DecodedFrame): void {
    const waiting = this.waiters.get(frame.id)?.shift();
    if (waiting) return waiting(frame);
    const queued = this.frames.get(frame.id) ?? [];
    queued.push(frame);
    this.frames.set(frame.id, queued);
  }

  /** The next frame with this id (id 0: replies to frames the worker could not attribute). */
  next(id: number, timeoutMs = 20_000): Promise<DecodedFrame> {
    const queued = this.frames.get(id)?.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply for id ${id} within ${timeoutMs} ms`)), timeoutMs);
      const list = this.waiters.get(id) ?? [];
      list.push((frame) => {
        clearTimeout(timer);
        resolve(frame);
      });
      this.waiters.set(id, list);
    });
  }

  /** Frames received and not yet taken, all ids. */
  pendingCount(): number {
    let n = 0;
    for (const list of this.frames.values()) n += list.length;
    return n;
  }

  send(op: string, params: WireRecord = {}, id = this.nextId++): number {
    this.input.write(encodeWireFrame('request', id, { op, ...params }));
    return id;
  }

  sendRaw(bytes: Uint8Array): void {
    this.input.write(bytes);
  }

  call(op: string, params: WireRecord = {}): Promise<DecodedFrame> {
    return this.next(this.send(op, params));
  }

  freshId(): number {
    return this.nextId++;
  }

  async close(): Promise<number | null> {
    this.input.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    const code = await this.exited;
    clearTimeout(timer);
    assert.deepEqual(this.violations, [], 'every frame of the worker decodes');
    return code;
  }
}

interface EvalOk {
  value: unknown;
  valueJson: string;
  stdout: string;
  stderr: string;
  truncated: boolean;
  error?: { name: string; message: string; stack?: string };
}

/** The frame's record as a plain object (decoded records have a null prototype). */
function record(frame: DecodedFrame): WireRecord {
  assert.ok(!(frame.payload instanceof Uint8Array), `${frame.kind} frame carries a record`);
  return { ...frame.payload };
}

async function evalOk(w: WorkerClient, code: string, extra: WireRecord = {}): Promise<EvalOk> {
  const frame = await w.call('eval', { code, ...extra });
  const p = record(frame);
  assert.equal(frame.kind, 'ok', `eval ${JSON.stringify(code.slice(0, 80))}: ${JSON.stringify(p).slice(0, 500)}`);
  assert.equal(typeof p.valueJson, 'string');
  assert.equal(typeof p.stdout, 'string');
  assert.equal(typeof p.stderr, 'string');
  assert.equal(typeof p.truncated, 'boolean');
  const known = new Set(['valueJson', 'stdout', 'stderr', 'truncated', 'error']);
  assert.deepEqual(
    Object.keys(p).filter((k) => !known.has(k)),
    [],
    'no fields beyond the eval result',
  );
  return {
    value: JSON.parse(p.valueJson as string) as unknown,
    valueJson: p.valueJson as string,
    stdout: p.stdout as string,
    stderr: p.stderr as string,
    truncated: p.truncated as boolean,
    ...(p.error !== undefined ? { error: p.error as unknown as EvalOk['error'] } : {}),
  };
}

async function value(w: WorkerClient, code: string, extra: WireRecord = {}): Promise<unknown> {
  const r = await evalOk(w, code, extra);
  assert.equal(r.error, undefined, `eval ${code}: ${JSON.stringify(r.error)}`);
  return r.value;
}

function errorOf(frame: DecodedFrame): { code: string; message: string } {
  const p = record(frame);
  assert.equal(frame.kind, 'error', `expected an ERROR, got ${frame.kind} ${JSON.stringify(p).slice(0, 300)}`);
  assert.equal(typeof p.code, 'string');
  assert.equal(typeof p.message, 'string');
  assert.ok((p.message as string).length <= MAX_ERROR_MESSAGE_CHARS);
  return { code: p.code as string, message: p.message as string };
}

function body(kind: number, id: number, payload: Uint8Array): Buffer {
  const header = Buffer.alloc(9);
  header[0] = kind;
  header.writeBigUInt64LE(BigInt(id), 1);
  return Buffer.concat([header, payload]);
}

/** What both workers do with frames that are not a request they serve. */
async function checkJunk(w: WorkerClient, language: 'js' | 'python'): Promise<void> {
  // Garbage that is not even COBS (a block longer than the frame): no id to answer with.
  w.sendRaw(Buffer.from([0xde, 0xad, 0x00]));
  assert.equal(errorOf(await w.next(0)).code, 'bad_request');
  // Legal padding: no reply at all (checked below: the next reply is for the next frame).
  w.sendRaw(Buffer.from([0, 0, 0]));
  // A readable header and a lying record: answered with its id.
  let id = w.freshId();
  w.sendRaw(cobsEncode(body(0x01, id, Buffer.from([0xff, 0xff, 0x01]))));
  assert.equal(errorOf(await w.next(id)).code, 'bad_request');
  id = w.freshId();
  w.sendRaw(cobsEncode(body(0x7f, id, Buffer.alloc(2))));
  assert.match(errorOf(await w.next(id)).message, /unknown kind/);
  id = w.freshId();
  w.sendRaw(encodeWireFrame('data', id, Buffer.from('chunk')));
  assert.equal(errorOf(await w.next(id)).code, 'bad_request');
  id = w.freshId();
  w.sendRaw(encodeWireFrame('request', id, { code: '1' }));
  assert.equal(errorOf(await w.next(id)).code, 'bad_request', 'a request without op');
  assert.equal(errorOf(await w.call('no.such.op')).code, 'unknown_op');
  assert.equal(errorOf(await w.call('eval', { code: 5 })).code, 'bad_request');
  assert.equal(errorOf(await w.call('eval', { code: '1', timeoutMs: 0 })).code, 'bad_request');
  assert.equal(errorOf(await w.call('eval', { code: '1', timeoutMs: 1.5 })).code, 'bad_request');
  assert.equal(errorOf(await w.call('eval', { code: '1', timeoutMs: MAX_EXEC_TIMEOUT_MS + 1 })).code, 'bad_request');
  const other = language === 'js' ? 'python' : 'js';
  assert.equal(errorOf(await w.call('eval', { code: '1', language: other })).code, 'bad_request');
  assert.equal(errorOf(await w.call('eval', { code: 'x'.repeat(MAX_EVAL_CODE_BYTES + 1) })).code, 'too_large');
  // A frame over MAX_FRAME_BYTES is skipped up to its delimiter and answered with its id.
  id = w.freshId();
  const huge = encodeWireFrame('request', id, { op: 'eval', code: 'y'.repeat(MAX_FRAME_BYTES + 100) });
  w.sendRaw(huge.subarray(0, 300_000));
  w.sendRaw(huge.subarray(300_000));
  const big = errorOf(await w.next(id));
  assert.equal(big.code, 'too_large');
  // An id beyond 2^53 cannot be attributed.
  w.sendRaw(cobsEncode(body(0x01, 0, Buffer.alloc(0)).fill(0xff, 1, 9)));
  assert.equal(errorOf(await w.next(0)).code, 'bad_request');
  // Unknown fields are ignored; the worker still serves, with its state.
  assert.equal(await value(w, language === 'js' ? '40 + 2' : '40 + 2', { language, future: [1, { x: 'y' }] }), 42);
  assert.equal(w.pendingCount(), 0, 'padding and junk got exactly one reply each');
}

// ---------------------------------------------------------------- the JS worker

void describe('JS eval worker', () => {
  let w: WorkerClient;
  before(() => {
    w = WorkerClient.spawn(process.execPath, [JS_WORKER]);
  });
  after(async () => {
    assert.equal(await w.close(), 0, 'the worker exits 0 when its input ends');
  });

  void it('keeps state across calls and returns the last expression', async () => {
    assert.equal(await value(w, 'var counter = 41; counter + 1'), 42);
    assert.equal(await value(w, 'counter++; counter'), 42);
    assert.notEqual(await value(w, 'let lex = "kept"; globalThis.g = [1, 2]'), undefined);
    assert.deepEqual(await value(w, '[lex, g]'), ['kept', [1, 2]]);
    assert.equal(await value(w, 'function f(x) { return x * 2 }; f(21)'), 42);
    assert.equal(await value(w, 'counter', { language: 'js', timeoutMs: 5000 }), 42);
  });

  void it('captures console per call, supports await, require and process', async () => {
    const r = await evalOk(
      w,
      'console.log("hi", 1); console.error("oops"); await new Promise((r) => setTimeout(r, 10)); 7',
    );
    assert.deepEqual([r.value, r.stdout, r.stderr, r.truncated], [7, 'hi 1\n', 'oops\n', false]);
    assert.equal(await value(w, 'await Promise.resolve(require("node:path").join("a", "b"))'), 'a/b');
    assert.equal(await value(w, 'typeof process.pid'), 'number');
    // Sent together: served one at a time in arrival order, each with its own output.
    const a = w.send('eval', { code: 'await new Promise((r) => setTimeout(r, 50)); console.log("A"); 1' });
    const b = w.send('eval', { code: 'console.log("B"); 2' });
    const order: number[] = [];
    const [ra, rb] = await Promise.all([
      w.next(a).then((f) => (order.push(a), record(f))),
      w.next(b).then((f) => (order.push(b), record(f))),
    ]);
    assert.deepEqual([ra.stdout, rb.stdout, order], ['A\n', 'B\n', [a, b]]);
    const big = await evalOk(w, 'console.log("z".repeat(300000)); 1');
    assert.equal(big.truncated, true);
    assert.equal(Buffer.byteLength(big.stdout), MAX_EVAL_CAPTURE_BYTES);
  });

  void it('maps values: undefined -> null, non-JSON -> String(), too large -> error', async () => {
    assert.equal((await evalOk(w, 'undefined')).valueJson, 'null');
    assert.equal((await evalOk(w, '10n')).valueJson, '"10"');
    assert.match(String(await value(w, '(x) => x')), /x => x|\(x\) => x/);
    assert.deepEqual(await value(w, '({ a: [1, "é", null], b: { c: true } })'), { a: [1, 'é', null], b: { c: true } });
    const big = await evalOk(w, '"x".repeat(300000)');
    assert.equal(big.error?.name, 'ResultTooLarge');
    assert.equal(big.valueJson, 'null');
    const s = 'q'.repeat(400_000);
    assert.equal(await value(w, `const long = "${s}"; long.length`), 400_000, 'a large code frame');
    assert.equal(await value(w, '"\\ud800"'), '\ud800', 'a lone surrogate travels escaped in the JSON text');
  });

  void it('reports exceptions; timeouts and SIGINT end in ERROR and keep the context', async () => {
    const r = await evalOk(w, 'throw new TypeError("bad")');
    assert.deepEqual([r.error?.name, r.error?.message, r.valueJson], ['TypeError', 'bad', 'null']);
    assert.match(r.error?.stack ?? '', /TypeError: bad/);
    assert.equal((await evalOk(w, 'syntax error here')).error?.name, 'SyntaxError');
    assert.equal((await evalOk(w, 'throw 5')).error?.message, 'thrown: 5');
    const sync = errorOf(await w.call('eval', { code: 'while (true) {}', timeoutMs: 200 }));
    assert.equal(sync.code, 'timeout');
    const pending = errorOf(await w.call('eval', { code: 'await new Promise(() => {})', timeoutMs: 200 }));
    assert.equal(pending.code, 'timeout');
    assert.equal(await value(w, 'counter'), 42, 'the context survived the timeouts');

    // SIGINT stops an awaiting eval at once; a synchronous loop only at its timeout (no breakOnSigint).
    let id = w.send('eval', { code: 'while (true) {}', timeoutMs: 1000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    w.proc.kill('SIGINT');
    assert.equal(errorOf(await w.next(id)).code, 'timeout');
    id = w.send('eval', { code: 'await new Promise(() => {})', timeoutMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    w.proc.kill('SIGINT');
    assert.equal(errorOf(await w.next(id)).code, 'cancelled');
    w.proc.kill('SIGINT'); // idle: ignored
    // A stray exception in a timer is logged, not fatal.
    assert.equal(await value(w, 'setTimeout(() => { throw new Error("late") }, 0); 1'), 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await value(w, 'counter'), 42, 'SIGINT and stray exceptions left the worker alive');
  });

  void it('backs Math.random by the kernel CRNG', async () => {
    assert.equal(await value(w, 'Array.from({ length: 1000 }, Math.random).every((x) => x >= 0 && x < 1)'), true);
    const before = (await value(w, 'Array.from({ length: 4 }, Math.random)')) as number[];
    w.send('reseed', {}, 0);
    const afterReseed = (await value(w, 'Array.from({ length: 4 }, Math.random)')) as number[];
    assert.ok(before.every((x) => !afterReseed.includes(x)));
    assert.equal(w.pendingCount(), 0, 'reseed with id 0 has no reply');
    assert.deepEqual(record(await w.call('reseed')), {}, 'reseed with an id is answered');
    assert.match(String((record(await w.call('warm.js')) as { version?: unknown }).version), /^\d+\.\d+\.\d+$/);
  });

  void it('answers junk frames and keeps serving', async () => {
    await checkJunk(w, 'js');
  });

  void it('holds replies while the agent does not read (back-pressure) and loses none', async () => {
    w.output.pause();
    const ids = Array.from({ length: 12 }, (_, i) =>
      w.send('eval', { code: `console.log("${String.fromCharCode(97 + i)}".repeat(200000)); ${i}` }),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    w.output.resume();
    for (const [i, id] of ids.entries()) {
      const p = record(await w.next(id));
      assert.equal(p.valueJson, String(i));
      assert.equal(p.stdout, `${String.fromCharCode(97 + i).repeat(200000)}\n`);
    }
  });
});

void describe('JS eval worker randomness', () => {
  let dir: string;
  let pool: Buffer;
  let w: WorkerClient;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'forkd-js-worker-'));
    pool = randomBytes(64 * 1024);
    writeFileSync(join(dir, 'random'), pool);
    w = WorkerClient.spawn(process.execPath, [JS_WORKER, '--random-device', join(dir, 'random')]);
  });
  after(async () => {
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The UrandomPool's n-th double when refilled from the start of `pool`. */
  const double = (n: number): number =>
    ((pool.readUIntBE(n * 7, 3) & 0x1fffff) * 2 ** 32 + pool.readUInt32BE(n * 7 + 3)) / 2 ** 53;

  void it('routes crypto to the device: no OpenSSL state a snapshot would copy', async () => {
    // installKernelRandom reads the device sequentially: randomBytes takes bytes 0..8, randomInt the next 6.
    assert.equal(await value(w, 'require("node:crypto").randomBytes(8).toString("hex")'), pool.toString('hex', 0, 8));
    const range = 1000;
    const limit = 0xffff_ffff_ffff - (0xffff_ffff_ffff % range);
    const x = pool.readUIntBE(8, 6);
    if (x < limit) assert.equal(await value(w, `require("node:crypto").randomInt(${range})`), x % range);
    assert.equal(await value(w, 'crypto.getRandomValues(new Uint8Array(2)).join()'), `${pool[14]},${pool[15]}`);
  });

  void it('draws Math.random here and in the main realm from one pool that reseed drops', async () => {
    assert.deepEqual(await value(w, '[Math.random(), Math.random()]'), [double(0), double(1)]);
    // Modules user code requires run in the worker's own realm: its Math.random is the same pool.
    assert.equal(await value(w, 'Buffer.constructor("return Math.random()")()'), double(2));
    w.send('reseed', {}, 0);
    // Without reseed this would be double(3): the buffered pool (copied into every child of a
    // snapshot) is gone and the next value comes from a fresh read of the device.
    assert.equal(await value(w, 'Math.random()'), double(0));
  });
});

void describe('JS eval worker on real pipes', () => {
  void it('serves over FIFOs and exits 0 at the end of its input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'forkd-js-pipes-'));
    try {
      const [inPath, outPath] = [join(dir, 'in'), join(dir, 'out')];
      execFileSync('mkfifo', [inPath, outPath]);
      // A non-blocking read open needs no writer; then the write open finds its reader.
      const childIn = openSync(inPath, constants.O_RDONLY | constants.O_NONBLOCK);
      const writer = new Socket({ fd: openSync(inPath, 'w'), readable: false, writable: true });
      const reader = new Socket({
        fd: openSync(outPath, constants.O_RDONLY | constants.O_NONBLOCK),
        readable: true,
        writable: false,
      });
      const childOut = openSync(outPath, 'w');
      const proc = spawn(process.execPath, [JS_WORKER], { stdio: ['ignore', 'inherit', 'inherit', childIn, childOut] });
      closeSync(childIn);
      closeSync(childOut);
      const w = new WorkerClient(proc, writer, reader);
      assert.equal(await value(w, 'var p = 6; p * 7'), 42);
      assert.equal(await value(w, 'p'), 6);
      assert.equal(await w.close(), 0);
      reader.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- the Python worker

/** Runs `script` with the worker loaded as module `w` (its __main__ guard keeps it from serving). */
function withPyModule(script: string, input = ''): string {
  const prelude = [
    'import importlib.util, json, sys',
    `spec = importlib.util.spec_from_file_location('py_worker', ${JSON.stringify(PY_WORKER)})`,
    'w = importlib.util.module_from_spec(spec)',
    'spec.loader.exec_module(w)',
  ].join('\n');
  const r = spawnSync('python3', ['-c', `${prelude}\n${script}`], {
    input,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

void describe('Python eval worker', { skip: NO_PYTHON }, () => {
  let w: WorkerClient;
  before(() => {
    w = WorkerClient.spawn('python3', [PY_WORKER]);
  });
  after(async () => {
    if (w) assert.equal(await w.close(), 0, 'the worker exits 0 when its input ends');
  });

  void it('warms with preloaded modules, keeps globals, captures print per call', async () => {
    const version = execFileSync('python3', ['-c', 'import platform; print(platform.python_version())'], {
      encoding: 'utf8',
    }).trim();
    const warm = await w.call('warm.python', { pythonPreload: ['math'] });
    assert.equal(warm.kind, 'ok');
    assert.deepEqual(record(warm), { version, modules: ['math'] });
    assert.equal(await value(w, 'math.sqrt(16)', { language: 'python' }), 4);
    const side = await evalOk(w, 'a = 5\nprint("side", a)\na * 2');
    assert.deepEqual([side.value, side.stdout, side.stderr], [10, 'side 5\n', '']);
    const r = await evalOk(w, 'import sys\nprint("x")\nprint("y", file=sys.stderr)\na');
    assert.deepEqual([r.value, r.stdout, r.stderr, r.truncated], [5, 'x\n', 'y\n', false]);
    assert.equal((await evalOk(w, 'x = 1')).valueJson, 'null');
    assert.deepEqual(await value(w, '{"k": [1, 2.5, None, "é"], "t": (True,)}'), { k: [1, 2.5, null, 'é'], t: [true] });
    const big = await evalOk(w, 'print("z" * 300000)');
    assert.equal(big.truncated, true);
    assert.equal(Buffer.byteLength(big.stdout), MAX_EVAL_CAPTURE_BYTES);
    assert.equal(
      await value(w, 'import pickle\nclass P:\n    pass\ntype(pickle.loads(pickle.dumps(P()))).__name__'),
      'P',
      'user classes live in a real __main__ module',
    );
    const s = 'q'.repeat(400_000);
    assert.equal(await value(w, `long = "${s}"\nlen(long)`), 400_000, 'a large code frame');
  });

  void it('reports exceptions and maps values', async () => {
    const r = await evalOk(w, '1 / 0');
    assert.equal(r.error?.name, 'ZeroDivisionError');
    assert.match(r.error?.stack ?? '', /ZeroDivisionError/);
    assert.doesNotMatch(r.error?.stack ?? '', /py-worker\.py/, "the worker's own frames are not shown");
    assert.equal((await evalOk(w, 'def f(:\n  pass')).error?.name, 'SyntaxError');
    assert.equal(await value(w, 'float("nan")'), 'nan');
    assert.equal(await value(w, 'object.__new__(type("Thing", (), {"__str__": lambda s: "a thing"}))'), 'a thing');
    assert.equal(await value(w, '"\\udcff"'), '\udcff', 'a lone surrogate travels escaped');
    const mixed = await evalOk(w, 'print("é \\udcff")\n1');
    assert.equal(mixed.stdout, 'é \ufffd\n');
    assert.equal(
      await value(w, 'import os\nos.system("echo fd1 output goes to the log")\n3'),
      3,
      'fd-level output cannot corrupt the worker protocol',
    );
    assert.equal((await evalOk(w, 'exit(1)')).error?.name, 'SystemExit');
    assert.equal((await evalOk(w, 'raise KeyboardInterrupt')).error?.name, 'KeyboardInterrupt');
    const large = await evalOk(w, '"x" * 300000');
    assert.equal(large.error?.name, 'ResultTooLarge');
    assert.equal(large.valueJson, 'null');
    assert.equal(await value(w, 'a'), 5, 'the globals survived all of it');
  });

  void it('times out with ERROR timeout, cancels on SIGINT, and keeps the globals', async () => {
    const started = Date.now();
    assert.equal(errorOf(await w.call('eval', { code: 'while True: pass', timeoutMs: 300 })).code, 'timeout');
    assert.ok(Date.now() - started < 5000);
    assert.equal(await value(w, 'a'), 5, 'state survived the timeout');
    assert.equal(
      errorOf(await w.call('eval', { code: 'import time\ntime.sleep(30)', timeoutMs: 300 })).code,
      'timeout',
    );
    // (An inner `while True: pass` would not do: CPython 3.11 raises a signal handler's exception
    // at a one-instruction self-loop outside its try block.)
    const swallow =
      'n = 0\nwhile True:\n    try:\n        while True:\n            n += 0\n    except BaseException:\n        n += 1\n        if n > 3: raise';
    assert.equal(errorOf(await w.call('eval', { code: swallow, timeoutMs: 200 })).code, 'timeout');
    assert.ok(((await value(w, 'n')) as number) >= 3, 'the timeout repeats while code swallows it');
    const id = w.send('eval', { code: 'while True: pass', timeoutMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    w.proc.kill('SIGINT');
    assert.equal(errorOf(await w.next(id)).code, 'cancelled');
    w.proc.kill('SIGINT'); // idle: ignored
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await value(w, 'a + 1'), 6);
    assert.equal(await value(w, 'import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n1'), 1);
    w.proc.kill('SIGINT'); // idle, with the default handler put back by user code
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await value(w, 'a'), 5, 'the worker survived a KeyboardInterrupt between requests');
  });

  void it('fails warm.python on a missing module with not_found and does not remember it', async () => {
    const missing = errorOf(await w.call('warm.python', { pythonPreload: ['no_such_module_xyz'] }));
    assert.equal(missing.code, 'not_found');
    assert.match(missing.message, /no_such_module_xyz/);
    assert.deepEqual((record(await w.call('warm.python', { pythonPreload: [] })) as { modules?: unknown }).modules, [
      'math',
    ]);
    assert.deepEqual(
      (record(await w.call('warm.python', { pythonPreload: ['json', 'os.path'] })) as { modules?: unknown }).modules,
      ['math', 'json', 'os.path'],
    );
    assert.equal(await value(w, 'os.path.join("a", "b")'), 'a/b');
    assert.equal(errorOf(await w.call('warm.python', { pythonPreload: ['bad name'] })).code, 'bad_request');
    assert.equal(errorOf(await w.call('warm.python', {})).code, 'bad_request');
  });

  void it('reseed replaces the random state a snapshot would share', async () => {
    const seeded = await value(w, 'import random\nrandom.seed(1)\nrandom.random()');
    assert.equal(await value(w, 'random.seed(1)\nrandom.random()'), seeded, 'seed(1) is reproducible');
    await value(w, 'random.seed(1)');
    w.send('reseed', {}, 0);
    assert.notEqual(await value(w, 'random.random()'), seeded);
    assert.equal(w.pendingCount(), 0, 'reseed with id 0 has no reply');
    assert.deepEqual(record(await w.call('reseed')), {}, 'reseed with an id is answered');
  });

  void it(
    'reseeds numpy.random when numpy is imported',
    { skip: !hasPython('numpy') && 'numpy not installed' },
    async () => {
      const warm = await w.call('warm.python', { pythonPreload: ['numpy'] });
      assert.equal(warm.kind, 'ok');
      assert.deepEqual(await value(w, 'np.ones(2).tolist()'), [1, 1]);
      const seeded = await value(w, 'numpy.random.seed(1)\nnumpy.random.random()');
      await value(w, 'numpy.random.seed(1)');
      w.send('reseed', {}, 0);
      assert.notEqual(await value(w, 'numpy.random.random()'), seeded);
    },
  );

  void it('answers junk frames and keeps serving', async () => {
    await checkJunk(w, 'python');
  });
});

void describe('Python worker internals', { skip: NO_PYTHON }, () => {
  void it('hard-codes the limits of src/protocol/limits.ts', () => {
    const got = JSON.parse(
      withPyModule(
        'print(json.dumps({k: getattr(w, k) for k in ["MAX_FRAME_BYTES", "MAX_EVAL_CODE_BYTES", "MAX_EVAL_CAPTURE_BYTES", "MAX_EVAL_VALUE_BYTES", "DEFAULT_EVAL_TIMEOUT_MS", "MAX_EXEC_TIMEOUT_MS", "MAX_ERROR_MESSAGE_CHARS"]}))',
      ),
    ) as unknown;
    assert.deepEqual(got, {
      MAX_FRAME_BYTES,
      MAX_EVAL_CODE_BYTES,
      MAX_EVAL_CAPTURE_BYTES,
      MAX_EVAL_VALUE_BYTES,
      DEFAULT_EVAL_TIMEOUT_MS,
      MAX_EXEC_TIMEOUT_MS,
      MAX_ERROR_MESSAGE_CHARS,
    });
  });

  void it('decodes and encodes frames exactly as wire.ts does, junk included', () => {
    const rec: WireRecord = {
      op: 'eval',
      code: 'print("hi")\n',
      int: -(2 ** 53 - 1),
      max: 2 ** 53 - 1,
      zero: 0,
      float: 1.5,
      neg: -0.25,
      nul: null,
      yes: true,
      no: false,
      bytes: Buffer.from([0, 1, 0, 255, 0]),
      é: 'ünïcødé ✓ 𝄞',
      list: [1, 'two', [3, [null]], { four: 4 }],
      nested: { a: { b: [1] }, c: [] },
      empty: {},
    };
    const valid: Buffer[] = [
      encodeWireFrame('request', 1, rec),
      encodeWireFrame('request', 2 ** 53 - 1, {}),
      encodeWireFrame('ok', 7, { valueJson: '{"a":1}', stdout: '', stderr: 'e', truncated: false }),
      encodeWireFrame('error', 0, { code: 'bad_request', message: 'm' }),
      encodeWireFrame('stdout', 3, Buffer.alloc(1000)),
      encodeWireFrame('filedata', 4, randomBytes(5000)),
      encodeWireFrame('data', 5, Buffer.alloc(0)),
      encodeWireFrame('end', 6, { sha256: 'f'.repeat(64) }),
      encodeWireFrame('request', 8, { s: 'x'.repeat(700_000) }),
    ];
    for (const n of [244, 245, 253, 254, 255, 508, 509]) {
      valid.push(
        encodeWireFrame('request', 9, { s: 'a'.repeat(n) }),
        encodeWireFrame('stdout', 10, Buffer.alloc(n, 7)),
      );
    }
    // Deterministic mutations of the small frames: flipped, cut, inserted and dropped bytes.
    let seed = 0x2545f491;
    const rand = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const vectors: Buffer[] = valid.map((f) => f.subarray(0, f.length - 1));
    const small = vectors.filter((v) => v.length < 20_000);
    for (let i = 0; i < 4000; i++) {
      const v = Buffer.from(small[rand(small.length)]!);
      const at = rand(v.length);
      const mutation = rand(4);
      if (mutation === 0) v[at] = rand(256);
      if (mutation === 1) vectors.push(v.subarray(0, at));
      else if (mutation === 2)
        vectors.push(Buffer.concat([v.subarray(0, at), Buffer.from([rand(255) + 1]), v.subarray(at)]));
      else if (mutation === 3) vectors.push(Buffer.concat([v.subarray(0, at), v.subarray(at + 1)]));
      else vectors.push(v);
    }
    vectors.push(Buffer.alloc(0), Buffer.from([1]), cobsEncode(Buffer.alloc(8)).subarray(0, -1));
    const script = [
      'out = []',
      'for h in json.load(sys.stdin):',
      '    b = bytes.fromhex(h)',
      "    r = {'id': w.frame_id_of(b)}",
      '    try:',
      "        r['ok'] = w.encode_frame(*w.decode_frame(b)).hex()",
      '    except w.ProtocolError as e:',
      "        r['err'] = str(e)",
      '    except Exception as e:',
      "        r['crash'] = repr(e)",
      '    out.append(r)',
      'json.dump(out, sys.stdout)',
    ].join('\n');
    const results = JSON.parse(withPyModule(script, JSON.stringify(vectors.map((v) => v.toString('hex'))))) as {
      id: number;
      ok?: string;
      err?: string;
      crash?: string;
    }[];
    assert.equal(results.length, vectors.length);
    let rejected = 0;
    for (const [i, v] of vectors.entries()) {
      const r = results[i]!;
      const what = `vector ${i} (${v.toString('hex').slice(0, 80)})`;
      assert.equal(r.crash, undefined, `${what}: the Python codec failed other than with ProtocolError`);
      assert.equal(r.id, frameIdOf(v), `${what}: frame ids agree`);
      let ts: DecodedFrame | undefined;
      try {
        ts = decodeWireFrame(v);
      } catch {
        ts = undefined;
      }
      if (!ts) {
        rejected++;
        assert.ok(r.err !== undefined, `${what}: wire.ts rejects it, Python accepted it`);
        continue;
      }
      assert.ok(r.ok !== undefined, `${what}: wire.ts accepts it, Python said ${r.err}`);
      const py = Buffer.from(r.ok, 'hex');
      if (i < valid.length) assert.ok(py.equals(valid[i]!), `${what}: re-encoded byte for byte`);
      assert.deepEqual(decodeWireFrame(py.subarray(0, -1)), ts, `${what}: same frame after a Python round trip`);
    }
    assert.ok(rejected > 500, `the mutations exercise the error paths (${rejected} rejected)`);
  });
});
