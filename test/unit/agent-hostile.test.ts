// A hostile guest: a fake agent on a Unix socket that sends a 100 MB frame, undecodable bytes,
// wrong ids, wrong shapes, endless output, or nothing at all. The AgentClient must fail each request
// cleanly within its deadline, keep its memory bounded, and a second client in the same
// process (talking to the real guest agent core) must not notice any of it.
import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/agent/index.js';
import { isForkdError } from '../../src/lib/errors.js';
import {
  AGENT_PROTOCOL_VERSION,
  cobsDecode,
  cobsEncode,
  decodeWireFrame,
  encodeWireFrame,
  LineSplitter,
  MAX_FRAME_BYTES,
  type FrameKindName,
} from '../../src/protocol/index.js';
import { startGuest, type GuestHarness } from './agent-harness.js';

interface Request {
  id: number;
  op: string;
  [key: string]: unknown;
}

interface FakeGuest {
  socketPath: string;
  seen: Request[];
  close(): Promise<void>;
}

type Behaviour = (req: Request, socket: Socket, fake: FakeGuest) => Promise<void> | void;

async function write(socket: Socket, data: string | Buffer): Promise<boolean> {
  if (socket.destroyed) return false;
  if (socket.write(data)) return true;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      socket.off('drain', done).off('close', done);
      resolve();
    };
    socket.on('drain', done).on('close', done);
  });
  return !socket.destroyed;
}

/** A guest frame, delimiter included. */
const frame = (kind: FrameKindName, id: number, payload: Buffer | object): Buffer => encodeWireFrame(kind, id, payload);
const ok = (id: number, result: object): Buffer => frame('ok', id, result);

let dir: string;

async function fakeGuest(behave: Behaviour, opts: { hello?: object | null } = {}): Promise<FakeGuest> {
  const socketPath = join(dir, `fake-${Math.random().toString(36).slice(2)}.sock`);
  const sockets = new Set<Socket>();
  const fake: FakeGuest = { socketPath, seen: [], close: () => Promise.resolve() };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    const splitter = new LineSplitter(
      MAX_FRAME_BYTES,
      (encoded) => {
        const decoded = decodeWireFrame(encoded);
        if (decoded.kind !== 'request') return; // upload chunks: not looked at by these fakes
        const req = { ...(decoded.payload as object), id: decoded.id } as Request;
        if (req.op === 'hello') {
          if (opts.hello === null) return; // a guest that never answers
          const result = opts.hello ?? { protocolVersion: AGENT_PROTOCOL_VERSION, agentVersion: 'fake' };
          void write(socket, ok(req.id, result));
          return;
        }
        fake.seen.push(req);
        void behave(req, socket, fake);
      },
      () => assert.fail('the host sent an oversized frame'),
    );
    socket.on('data', (chunk: Buffer) => splitter.push(chunk));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  fake.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return fake;
}

/** Runs `fn` while sampling RSS and exercising a healthy client against the real agent. */
async function underStress<T>(
  fn: () => Promise<T>,
): Promise<{ outcome: PromiseSettledResult<T>; rssGrowthMiB: number; healthy: { ok: number; maxMs: number } }> {
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const healthy = { ok: 0, maxMs: 0 };
  let done = false;
  const loop = (async () => {
    while (!done) {
      const t0 = performance.now();
      const r = await good.exec({ argv: ['echo', 'ok'] }, { timeoutMs: 5000 });
      assert.equal(r.stdout.toString(), 'ok\n');
      healthy.ok++;
      healthy.maxMs = Math.max(healthy.maxMs, performance.now() - t0);
    }
  })();
  const [outcome] = await Promise.allSettled([fn()]);
  done = true;
  await loop;
  clearInterval(sampler);
  return { outcome, rssGrowthMiB: (peak - baseline) / 2 ** 20, healthy };
}

function rejected(outcome: PromiseSettledResult<unknown>): unknown {
  assert.equal(outcome.status, 'rejected', 'the request should have failed');
  return outcome.reason;
}

let guest: GuestHarness;
let good: AgentClient;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'forkd-hostile-'));
  guest = await startGuest();
  good = await AgentClient.connect(guest.socketPath);
  await good.exec({ argv: ['true'] }); // warm up before memory baselines
});

after(async () => {
  good.close();
  await guest.close();
  await rm(dir, { recursive: true, force: true });
});

void describe('hostile agent', () => {
  void it('a 100 MB frame fails its request; memory stays bounded; other clients unaffected', async (t) => {
    const mib = Buffer.alloc(1024 * 1024, 'x');
    const fake = await fakeGuest(async (req, socket) => {
      // The start of an OK frame whose string field never ends within the limit.
      const head = ok(req.id, { s: 'x'.repeat(100) }).subarray(0, -1);
      if (!(await write(socket, head))) return;
      for (let i = 0; i < 100; i++) if (!(await write(socket, mib))) return;
      await write(socket, Buffer.alloc(1));
    });
    const bad = await AgentClient.connect(fake.socketPath);
    const { outcome, rssGrowthMiB, healthy } = await underStress(() =>
      bad.exec({ argv: ['x'] }, { timeoutMs: 60_000 }),
    );
    t.diagnostic(
      `rss growth ${rssGrowthMiB.toFixed(1)} MiB; healthy client: ${healthy.ok} execs, slowest ${healthy.maxMs.toFixed(0)} ms`,
    );
    const err = rejected(outcome);
    assert.ok(isForkdError(err, 'agent_error'), String(err));
    assert.match((err as Error).message, /over the 1048576-byte limit/);
    assert.ok(rssGrowthMiB < 64, `rss grew ${rssGrowthMiB.toFixed(1)} MiB`);
    assert.ok(healthy.ok > 0 && healthy.maxMs < 2000, JSON.stringify(healthy));
    assert.equal(
      (await bad.ping({ timeoutMs: 200 }).catch((e: unknown) => e)) instanceof Error,
      true,
      'fake answers nothing else',
    );
    bad.close();
    await fake.close();
  });

  void it('undecodable frames and wrong ids: the request times out within its deadline', async () => {
    const fake = await fakeGuest(async (req, socket) => {
      const junk = Buffer.concat([
        Buffer.from('not a frame\0'),
        cobsEncode(Buffer.from([0x20, 1, 2])), // shorter than a header
        cobsEncode(Buffer.from([0x77, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])), // unknown kind
        Buffer.from([9, 1, 2, 0]), // truncated COBS block
        ok(req.id + 1, {}),
        frame('error', req.id - 1, { code: 'internal', message: 'x' }),
        frame('error', 0, { code: 'internal', message: 'unattributed' }),
        frame('request', req.id + 7, { op: 'exec' }), // a kind the guest never sends, for another id
        Buffer.from([1, 2, 3, 0]),
      ]);
      for (let i = 0; i < 200; i++) await write(socket, junk);
    });
    const bad = await AgentClient.connect(fake.socketPath);
    const t0 = performance.now();
    const { outcome, healthy } = await underStress(() => bad.ping({ timeoutMs: 500 }));
    const elapsed = performance.now() - t0;
    assert.ok(isForkdError(rejected(outcome), 'timeout'));
    assert.ok(elapsed >= 450 && elapsed < 1500, `failed after ${elapsed} ms`);
    assert.ok(healthy.ok > 0);
    bad.close();
    await fake.close();
  });

  void it('wrong shapes for the right id fail that request at once with agent_error', async () => {
    const oversizedChunk = (id: number): Buffer => frame('stdout', id, Buffer.alloc(256 * 1024 + 1, 'a'));
    const replies: Record<string, (id: number) => Buffer> = {
      'bad result': (id) =>
        ok(id, { exitCode: 'zero', signal: null, timedOut: false, truncated: false, durationMs: 1 }),
      'foreign error code': (id) => frame('error', id, { code: 'unauthorized', message: 'pretend' }),
      'file data in exec': (id) => frame('filedata', id, Buffer.from('a')),
      'oversized chunk': oversizedChunk,
      'integer beyond 2^53': (id) =>
        ok(id, { exitCode: 2 ** 53 + 2, signal: null, timedOut: false, truncated: false, durationMs: 1 }),
      'bytes where a number belongs': (id) =>
        ok(id, { exitCode: Buffer.from('0'), signal: null, timedOut: false, truncated: false, durationMs: 1 }),
      'trailing bytes after the record': (id) => {
        const f = ok(id, {}).subarray(0, -1);
        return cobsEncode(Buffer.concat([cobsDecode(f), Buffer.from([7])]));
      },
      'pid for a foreground exec': (id) => ok(id, { pid: 1 }),
    };
    for (const [name, reply] of Object.entries(replies)) {
      const fake = await fakeGuest((req, socket) => void write(socket, reply(req.id)));
      const bad = await AgentClient.connect(fake.socketPath);
      const t0 = performance.now();
      const err = await bad.exec({ argv: ['x'] }, { timeoutMs: 5000 }).catch((e: unknown) => e);
      assert.ok(isForkdError(err, 'agent_error'), `${name}: ${String(err)}`);
      assert.ok(performance.now() - t0 < 1000, `${name}: failed at once`);
      bad.close();
      await fake.close();
    }
  });

  void it('a guest error maps onto our codes only', async () => {
    const fake = await fakeGuest(
      (req, socket) => void write(socket, frame('error', req.id, { code: 'not_found', message: 'm'.repeat(100) })),
    );
    const bad = await AgentClient.connect(fake.socketPath);
    const err = await bad.files.stat('/x').catch((e: unknown) => e);
    assert.ok(isForkdError(err, 'not_found'));
    assert.equal(err.details?.guestCode, 'not_found');
    bad.close();
    await fake.close();
  });

  void it('endless output: bounded collection, timeout, cancel sent; others unaffected', async (t) => {
    const chunk = Buffer.alloc(48 * 1024, 'y');
    const fake = await fakeGuest(async (req, socket, f) => {
      if (req.op !== 'exec') return;
      const cancelled = () => f.seen.some((r) => r.op === 'cancel' && r.target === req.id);
      while (!cancelled() && (await write(socket, frame('stdout', req.id, chunk)))) {
        // endless
      }
    });
    const bad = await AgentClient.connect(fake.socketPath);
    let streamed = 0;
    const t0 = performance.now();
    const { outcome, rssGrowthMiB, healthy } = await underStress(() =>
      bad.exec({ argv: ['yes'] }, { timeoutMs: 2000, onStdout: (c) => (streamed += c.length) }),
    );
    const elapsed = performance.now() - t0;
    t.diagnostic(
      `streamed ${(streamed / 2 ** 20).toFixed(0)} MiB; rss growth ${rssGrowthMiB.toFixed(1)} MiB; healthy client: ${healthy.ok} execs, slowest ${healthy.maxMs.toFixed(0)} ms`,
    );
    assert.ok(isForkdError(rejected(outcome), 'timeout'));
    assert.ok(elapsed < 3000, `took ${elapsed} ms`);
    assert.ok(streamed > 16 * 1024 * 1024, `only ${streamed} bytes streamed`);
    assert.ok(rssGrowthMiB < 64, `rss grew ${rssGrowthMiB.toFixed(1)} MiB`);
    assert.ok(healthy.ok > 0 && healthy.maxMs < 2000, JSON.stringify(healthy));
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(
      fake.seen.some((r) => r.op === 'cancel'),
      'the client told the guest to stop',
    );
    bad.close();
    await fake.close();
  });

  void it('a throwing onStdout fails the request and cancels it', async () => {
    const fake = await fakeGuest((req, socket) => void write(socket, frame('stdout', req.id, Buffer.from('a'))));
    const bad = await AgentClient.connect(fake.socketPath);
    const err = await bad
      .exec(
        { argv: ['x'] },
        {
          onStdout: () => {
            throw new Error('consumer broke');
          },
        },
      )
      .catch((e: unknown) => e);
    assert.match(String(err), /consumer broke/);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(fake.seen.some((r) => r.op === 'cancel'));
    bad.close();
    await fake.close();
  });

  void it('silence: hello and requests time out; a closed connection fails pending at once', async () => {
    const mute = await fakeGuest(() => undefined, { hello: null });
    let t0 = performance.now();
    await assert.rejects(AgentClient.connect(mute.socketPath, { timeoutMs: 400 }), (err) =>
      isForkdError(err, 'timeout'),
    );
    assert.ok(performance.now() - t0 < 1200);
    await mute.close();

    const quiet = await fakeGuest((req, socket) => {
      if (req.op === 'files.stat') socket.destroy();
    });
    const bad = await AgentClient.connect(quiet.socketPath);
    t0 = performance.now();
    await assert.rejects(bad.ping({ timeoutMs: 300 }), (err) => isForkdError(err, 'timeout'));
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 290 && elapsed < 1000, `${elapsed} ms`);
    const waiting = bad.eval({ code: '1' }, { timeoutMs: 10_000 });
    t0 = performance.now();
    await assert.rejects(bad.files.stat('/x'), (err) => isForkdError(err, 'agent_error'));
    await assert.rejects(waiting, (err) => isForkdError(err, 'agent_error'));
    assert.ok(performance.now() - t0 < 1000);
    assert.equal(bad.isClosed, true);
    await bad.closed;
    await quiet.close();
  });

  void it('connect waits for a socket that appears late, and refuses another protocol', async () => {
    const fakePath = join(dir, 'late.sock');
    const pending = AgentClient.connect(fakePath, { timeoutMs: 3000 });
    await new Promise((r) => setTimeout(r, 200));
    const server = createServer((socket) => {
      const splitter = new LineSplitter(
        MAX_FRAME_BYTES,
        (encoded) =>
          void socket.write(ok(decodeWireFrame(encoded).id, { protocolVersion: 999, agentVersion: 'future' })),
        () => undefined,
      );
      socket.on('data', (d: Buffer) => splitter.push(d));
    });
    await new Promise<void>((resolve) => server.listen(fakePath, resolve));
    await assert.rejects(pending, (err) => isForkdError(err, 'agent_error') && /protocol 999/.test(err.message));
    await new Promise((resolve) => server.close(resolve));
    await assert.rejects(
      AgentClient.connect(join(dir, 'never.sock'), { timeoutMs: 200 }),
      (err) => isForkdError(err, 'timeout') && /ENOENT/.test(err.message),
    );
  });
});

void describe('client requests', () => {
  void it('exec carries its timeout to the guest; a background exec runs unbounded unless asked', async () => {
    const done = { exitCode: 0, signal: null, timedOut: false, truncated: false, durationMs: 1 };
    const fake = await fakeGuest((req, socket) => void write(socket, ok(req.id, req.background ? { pid: 7 } : done)));
    const c = await AgentClient.connect(fake.socketPath);
    await c.exec({ argv: ['x'] });
    assert.deepEqual(await c.exec({ argv: ['y'], background: true }), { pid: 7 });
    await c.exec({ argv: ['z'], background: true, timeoutMs: 5000 });
    assert.deepEqual(
      fake.seen.map((r) => [r.background ?? false, r.timeoutMs]),
      [
        [false, 60_000],
        [true, undefined],
        [true, 5000],
      ],
    );
    c.close();
    await fake.close();
  });
});
