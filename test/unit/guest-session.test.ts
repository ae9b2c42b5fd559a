// The native agent's side of the wire, spoken to raw with protocol-2 frames (src/protocol/wire.ts):
// what it answers to bad frames, its own request limit, cancel, upload checks, disconnects,
// back-pressure, and how it forwards eval to a worker (a fake one here, so the agent's part is
// tested apart from the real workers). The host client never sends most of this.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { AGENT_PROTOCOL_VERSION, MAX_CONCURRENT_REQUESTS, MAX_FRAME_BYTES } from '../../src/protocol/index.js';
import {
  cobsEncode,
  decodeWireFrame,
  encodeWireFrame,
  type DecodedFrame,
  type WireRecord,
} from '../../src/protocol/wire.js';
import { assertGone, startGuest, type GuestHarness } from './agent-harness.js';

type Kind = 'request' | 'data' | 'end';

class RawClient {
  readonly frames: DecodedFrame[] = [];
  private pending = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      let z: number;
      while ((z = this.pending.indexOf(0)) >= 0) {
        const f = this.pending.subarray(0, z);
        this.pending = this.pending.subarray(z + 1);
        if (f.length > 0) this.frames.push(decodeWireFrame(f));
      }
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
  }

  static async open(path: string): Promise<RawClient> {
    const socket = connect(path);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(Buffer.alloc(1)); // what a host sends first
    return new RawClient(socket);
  }

  send(kind: Kind, id: number, payload: Uint8Array | object): void {
    this.socket.write(encodeWireFrame(kind, id, payload));
  }

  request(id: number, params: WireRecord): void {
    this.send('request', id, params);
  }

  /** A frame body as given (kind, id, payload bytes), COBS-encoded: for what encodeWireFrame refuses. */
  sendBody(kind: number, id: number, payload: Buffer): void {
    const head = Buffer.alloc(9);
    head[0] = kind;
    head.writeBigUInt64LE(BigInt(id), 1);
    this.socket.write(cobsEncode(Buffer.concat([head, payload])));
  }

  /** The final reply (OK or ERROR) for `id`. */
  async reply(id: number, timeoutMs = 5000): Promise<DecodedFrame & { payload: WireRecord }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find((x) => x.id === id && (x.kind === 'ok' || x.kind === 'error'));
      if (f) return f as DecodedFrame & { payload: WireRecord };
      if (Date.now() > deadline) throw new Error(`no reply for ${id}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  async errorCode(id: number): Promise<unknown> {
    const f = await this.reply(id);
    return f.kind === 'error' ? f.payload.code : 'ok';
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A record of raw fields: keylen key value-bytes (values already encoded). */
function record(fields: Array<[string, Buffer]>): Buffer {
  const parts: Buffer[] = [Buffer.from([fields.length & 0xff, fields.length >> 8])];
  for (const [k, v] of fields) parts.push(Buffer.from([k.length]), Buffer.from(k), v);
  return Buffer.concat(parts);
}
const str = (s: string): Buffer => {
  const b = Buffer.alloc(5);
  b[0] = 0x05;
  b.writeUInt32LE(Buffer.byteLength(s), 1);
  return Buffer.concat([b, Buffer.from(s)]);
};
const list = (...items: Buffer[]): Buffer => {
  const b = Buffer.alloc(5);
  b[0] = 0x07;
  b.writeUInt32LE(items.length, 1);
  return Buffer.concat([b, ...items]);
};

/** A wire value as text: a string as is, bytes as UTF-8, anything else as JSON. */
function text(v: unknown): string {
  return typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString() : JSON.stringify(v);
}

async function vmRssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
}
async function cpuTicks(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

let guest: GuestHarness;
let raw: RawClient;

before(async () => {
  guest = await startGuest();
  raw = await RawClient.open(guest.socketPath);
});

after(async () => {
  raw.close();
  await guest.close();
});

void describe('guest session', () => {
  void it('answers junk with error frames and keeps serving', async () => {
    raw.socket.write(Buffer.from([0x05, 0x41, 0x00])); // a truncated COBS block
    assert.equal((await raw.reply(0)).payload.code, 'bad_request');
    raw.frames.length = 0;
    raw.socket.write(Buffer.from([0x02, 0x41, 0x00])); // a 1-byte body: no header
    assert.equal((await raw.reply(0)).payload.code, 'bad_request');
    raw.sendBody(0x01, 7, Buffer.from([0xff, 0xff])); // 65535 fields announced, none there
    assert.match(text((await raw.reply(7)).payload.message), /record/);
    raw.sendBody(
      0x01,
      8,
      record([
        ['op', str('ping')],
        ['op', str('ping')],
      ]),
    );
    assert.match(text((await raw.reply(8)).payload.message), /duplicate key/);
    raw.sendBody(
      0x01,
      9,
      record([
        ['op', str('ping')],
        ['a', list(list(list(list())))],
      ]),
    );
    assert.match(text((await raw.reply(9)).payload.message), /nested deeper than 4/);
    raw.sendBody(0x10, 10, Buffer.from('stdout from a host')); // a kind only the guest sends
    assert.equal(await raw.errorCode(10), 'bad_request');
    raw.sendBody(0x01, 11, Buffer.concat([record([['op', str('ping')]]), Buffer.from([1])]));
    assert.match(text((await raw.reply(11)).payload.message), /bytes after the record/);
    raw.request(1, { op: 'no.such.op' });
    raw.request(2, { op: 'files.read', path: 'relative' });
    raw.request(3, { op: 'ping', someFutureField: [1, 'x'] }); // unknown fields are ignored
    raw.request(4, { op: 'exec', argv: ['true'], shell: 'true' });
    raw.request(5, { op: 'exec', argv: [] });
    raw.request(6, { op: 'exec', argv: 'not a list' });
    assert.equal(await raw.errorCode(1), 'unknown_op');
    assert.equal(await raw.errorCode(2), 'bad_request');
    assert.equal(await raw.errorCode(3), 'ok');
    assert.equal(await raw.errorCode(4), 'bad_request');
    assert.equal(await raw.errorCode(5), 'bad_request');
    assert.equal(await raw.errorCode(6), 'bad_request');
    raw.request(12, { op: 'ping', x: '_'.repeat(MAX_FRAME_BYTES) });
    const tooBig = await raw.reply(12);
    assert.equal(tooBig.payload.code, 'too_large', 'id read from the head of an oversized frame');
    raw.request(13, { op: 'ping' });
    assert.equal(await raw.errorCode(13), 'ok');
    raw.request(14, { op: 'hello' });
    assert.equal((await raw.reply(14)).payload.protocolVersion, AGENT_PROTOCOL_VERSION);
  });

  void it(`refuses request ${MAX_CONCURRENT_REQUESTS + 1} with busy; cancel stops one`, async () => {
    for (let i = 0; i < MAX_CONCURRENT_REQUESTS; i++) raw.request(100 + i, { op: 'exec', argv: ['sleep', '30'] });
    raw.request(99, { op: 'ping' });
    assert.equal(await raw.errorCode(99), 'busy');
    const t0 = Date.now();
    for (let i = 0; i < MAX_CONCURRENT_REQUESTS; i++) raw.request(1000 + i, { op: 'cancel', target: 100 + i });
    for (let i = 0; i < MAX_CONCURRENT_REQUESTS; i++) {
      assert.deepEqual({ ...(await raw.reply(1000 + i)).payload }, { cancelled: true });
      assert.equal(await raw.errorCode(100 + i), 'cancelled');
    }
    assert.ok(Date.now() - t0 < 5000);
    raw.request(98, { op: 'cancel', target: 12345 });
    assert.deepEqual({ ...(await raw.reply(98)).payload }, { cancelled: false });
  });

  void it('rejects an upload whose sha256 or size does not match, leaving no file', async () => {
    const path = join(guest.dir, 'upload.bin');
    const data = Buffer.from('hello');
    raw.request(200, { op: 'files.write', path, size: 5 });
    raw.send('data', 200, data);
    raw.send('end', 200, { sha256: '0'.repeat(64) });
    assert.match(text((await raw.reply(200)).payload.message), /sha256 mismatch/);
    raw.request(201, { op: 'files.write', path, size: 4 });
    raw.send('data', 201, data);
    assert.equal(await raw.errorCode(201), 'too_large');
    // Chunks for the failed upload keep coming: dropped without a reply.
    raw.send('data', 201, data);
    raw.send('end', 201, { sha256: 'a'.repeat(64) });
    raw.request(203, { op: 'files.write', path, size: 6 });
    raw.send('data', 203, data);
    raw.send('end', 203, { sha256: createHash('sha256').update(data).digest('hex') });
    assert.match(text((await raw.reply(203)).payload.message), /got 5 bytes, announced 6/);
    const sha = createHash('sha256').update(data).digest('hex');
    raw.request(202, { op: 'files.write', path, size: 5, mode: 0o640 });
    raw.send('data', 202, data);
    raw.send('end', 202, { sha256: sha });
    assert.deepEqual({ ...(await raw.reply(202)).payload }, { size: 5, sha256: sha });
    assert.equal((await stat(path)).mode & 0o777, 0o640);
    assert.deepEqual(
      (await readdir(guest.dir)).filter((n) => n.includes('forkd-')),
      [],
    );
    assert.equal(raw.frames.filter((f) => f.id === 201).length, 1);
  });

  void it('aborts the requests of a host that disconnects', async () => {
    const other = await RawClient.open(guest.socketPath);
    other.request(1, { op: 'exec', shell: 'echo $$; sleep 30' });
    while (!other.frames.some((f) => f.kind === 'stdout')) await new Promise((r) => setTimeout(r, 20));
    const pid = Number(text(other.frames.find((f) => f.kind === 'stdout')?.payload).trim());
    other.close();
    await assertGone([pid]);
    raw.request(300, { op: 'ping' });
    assert.equal(await raw.errorCode(300), 'ok', 'the other session is unaffected');
  });

  void it('stops reading a command whose host does not read (bounded memory), and never spins idle', async () => {
    const slow = await RawClient.open(guest.socketPath);
    slow.socket.pause();
    slow.request(1, { op: 'exec', shell: 'head -c 200000000 /dev/zero' });
    await new Promise((r) => setTimeout(r, 1500));
    const rss = await vmRssKiB(guest.pid);
    assert.ok(rss < 48 * 1024, `agent RSS ${rss} KiB while its host does not read`);
    slow.close();
    const t0 = await cpuTicks(guest.pid);
    await new Promise((r) => setTimeout(r, 1000));
    const used = (await cpuTicks(guest.pid)) - t0;
    assert.ok(used <= 5, `${used} ticks of CPU in 1 s idle`);
  });
});

// A fake eval worker: frames on fds 3 and 4 like the real ones, answering `code` directives.
const FAKE_WORKER = `
import { Socket } from 'node:net';
import { appendFileSync } from 'node:fs';
import { encodeWireFrame, decodeWireFrame } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, '..', '..', 'src', 'protocol', 'wire.js')).href)};
const input = new Socket({ fd: 3, readable: true, writable: false });
const output = new Socket({ fd: 4, readable: false, writable: true });
const log = process.env.FAKE_WORKER_LOG;
let pending = Buffer.alloc(0);
input.on('data', (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  let z;
  while ((z = pending.indexOf(0)) >= 0) {
    const f = pending.subarray(0, z);
    pending = pending.subarray(z + 1);
    if (f.length) handle(decodeWireFrame(f));
  }
});
input.on('end', () => process.exit(0));
const ok = (id, value) => output.write(encodeWireFrame('ok', id, { valueJson: JSON.stringify(value), stdout: '', stderr: '', truncated: false }));
function handle({ id, payload: p }) {
  appendFileSync(log, id + ' ' + p.op + ' ' + (p.code ?? '') + '\\n');
  if (p.op === 'reseed') return;
  if (p.op === 'warm.python') return ok(id, p.pythonPreload);
  const [cmd, arg] = String(p.code).split(' ');
  if (cmd === 'exit') process.exit(3);
  if (cmd === 'hang') return;
  if (cmd === 'sleep') return void setTimeout(() => ok(id, 'slept'), Number(arg));
  output.write(encodeWireFrame('stdout', id, Buffer.from('out:' + p.code)));
  output.write(encodeWireFrame('ok', 999999, { valueJson: '"not yours"', stdout: '', stderr: '', truncated: false }));
  ok(id, { pid: process.pid, code: p.code });
}
`;

void describe('eval forwarding (fake worker)', () => {
  let g: GuestHarness;
  let c: RawClient;
  let workerLog: string;
  const evalReq = (id: number, code: string, extra: WireRecord = {}): void =>
    c.request(id, { op: 'eval', code, ...extra });
  const value = async (id: number): Promise<unknown> => {
    const f = await c.reply(id, 10_000);
    assert.equal(f.kind, 'ok', JSON.stringify(f.payload));
    return JSON.parse(text(f.payload.valueJson));
  };

  before(async () => {
    const dir = guest.dir;
    const script = join(dir, 'fake-worker.mjs');
    workerLog = join(dir, 'worker.log');
    await writeFile(script, FAKE_WORKER);
    await writeFile(workerLog, '');
    process.env.FAKE_WORKER_LOG = workerLog; // inherited by the agent, then by its workers
    g = await startGuest({ jsWorker: script, pyWorker: script, python: process.execPath });
    delete process.env.FAKE_WORKER_LOG;
    c = await RawClient.open(g.socketPath);
  });
  after(async () => {
    c.close();
    await g.close();
  });

  void it('forwards eval and its output verbatim, one at a time, dropping frames of other ids', async () => {
    c.request(1, { op: 'warm', pythonPreload: ['math'] });
    assert.deepEqual({ ...(await c.reply(1)).payload }, { js: true, python: true });
    evalReq(2, 'sleep 200');
    evalReq(3, 'second');
    assert.equal(await value(2), 'slept');
    const second = (await value(3)) as { pid: number; code: string };
    assert.equal(second.code, 'second');
    assert.equal(text(c.frames.find((f) => f.id === 3 && f.kind === 'stdout')?.payload), 'out:second');
    assert.equal(c.frames.filter((f) => f.id === 999999).length, 0, 'a reply for no request of ours is dropped');
    const order = (await readFile(workerLog, 'utf8')).trim().split('\n');
    assert.deepEqual(order.slice(-2), ['2 eval sleep 200', '3 eval second']);
    c.request(4, { op: 'warm.python', pythonPreload: ['json'] });
    assert.deepEqual(await value(4), ['json']);
    evalReq(5, 'py', { language: 'python' });
    assert.equal(((await value(5)) as { code: string }).code, 'py');
  });

  void it('tells each running worker to reseed after identity', async () => {
    c.request(10, {
      op: 'identity',
      sandboxId: 'sb',
      hostname: 'h',
      entropy: randomBytes(64),
      wallClockMs: Date.now(),
    });
    assert.equal(await c.errorCode(10), 'ok');
    evalReq(11, 'after');
    await value(11);
    // The JS worker read its reseed before eval 11; the Python one logs it in its own time.
    const reseeds = async (): Promise<number> =>
      (await readFile(workerLog, 'utf8')).split('\n').filter((l) => l === '0 reseed ').length;
    for (let i = 0; i < 100 && (await reseeds()) < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await reseeds(), 2, 'the JS and the Python worker');
  });

  void it('cancels a running or queued eval; the late reply is dropped', async () => {
    evalReq(20, 'sleep 300');
    evalReq(21, 'queued');
    c.request(22, { op: 'cancel', target: 20 });
    c.request(23, { op: 'cancel', target: 21 });
    assert.equal(await c.errorCode(20), 'cancelled');
    assert.equal(await c.errorCode(21), 'cancelled');
    evalReq(24, 'next');
    assert.equal(((await value(24)) as { code: string }).code, 'next');
    assert.equal(c.frames.filter((f) => f.id === 20).length, 1, 'only the cancelled error for 20');
    assert.ok(!(await readFile(workerLog, 'utf8')).includes('21 eval'), 'a queued eval never reached the worker');
  });

  void it('fails the running eval when its worker dies, and starts a new worker for the next', async () => {
    evalReq(30, 'whoami');
    const before = ((await value(30)) as { pid: number }).pid;
    evalReq(31, 'exit');
    const died = await c.reply(31);
    assert.deepEqual([died.payload.code, died.payload.message], ['internal', 'eval worker exited']);
    evalReq(32, 'whoami');
    const afterPid = ((await value(32)) as { pid: number }).pid;
    assert.notEqual(afterPid, before);
    await assertGone([before]);
  });

  void it('kills a worker that overruns timeoutMs by the grace period (5 s)', async () => {
    evalReq(40, 'whoami');
    const pid = ((await value(40)) as { pid: number }).pid;
    const t0 = Date.now();
    evalReq(41, 'hang', { timeoutMs: 100 });
    evalReq(42, 'queued behind the hang');
    const r = await c.reply(41, 10_000);
    assert.equal(r.payload.code, 'timeout');
    assert.ok(Date.now() - t0 >= 5000 && Date.now() - t0 < 8000, `${Date.now() - t0} ms`);
    await assertGone([pid]);
    assert.equal(((await value(42)) as { code: string }).code, 'queued behind the hang', 'served by a new worker');
  });

  void it('answers unsupported when the image has no runtime for the language', async () => {
    const bare = await startGuest({ node: '/nonexistent/node', python: '/nonexistent/python3' });
    const b = await RawClient.open(bare.socketPath);
    try {
      b.request(1, { op: 'eval', code: '1' });
      b.request(2, { op: 'eval', code: '1', language: 'python' });
      b.request(3, { op: 'warm', pythonPreload: [] });
      b.request(4, { op: 'eval', code: '1', language: 'ruby' });
      const js = await b.reply(1);
      const py = await b.reply(2);
      assert.equal(js.payload.code, 'unsupported');
      assert.match(text(js.payload.message), /--runtime node/);
      assert.equal(py.payload.code, 'unsupported');
      assert.match(text(py.payload.message), /--packages python3/);
      assert.deepEqual({ ...(await b.reply(3)).payload }, { js: false, python: false });
      assert.equal(await b.errorCode(4), 'bad_request');
    } finally {
      b.close();
      await bare.close();
    }
  });
});

void describe('agent shutdown', () => {
  void it('kills background process groups on SIGTERM', async () => {
    const g = await startGuest();
    const c = await RawClient.open(g.socketPath);
    c.request(1, { op: 'exec', shell: 'sleep 100 & echo $!; sleep 100', background: true });
    const { pid } = (await c.reply(1)).payload as { pid: number };
    await new Promise((r) => setTimeout(r, 200));
    c.close();
    await g.close();
    await assertGone([pid]);
  });
});
