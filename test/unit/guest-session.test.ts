// The guest's side of the wire, spoken to raw: what the agent answers to bad frames, its own
// request limit, cancel, and upload checks. (The host client never sends most of this.)
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAX_CONCURRENT_REQUESTS, MAX_FRAME_BYTES } from '../../src/protocol/index.js';
import { startGuest, type GuestHarness } from './agent-harness.js';

interface Frame {
  id: number | null;
  ok?: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
  stream?: string;
}

class RawClient {
  readonly frames: Frame[] = [];
  private buffered = '';
  private waiters: Array<() => void> = [];

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered += chunk.toString();
      const lines = this.buffered.split('\n');
      this.buffered = lines.pop() ?? '';
      for (const l of lines) this.frames.push(JSON.parse(l) as Frame);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(path: string): Promise<RawClient> {
    const socket = connect(path);
    await new Promise((resolve) => socket.once('connect', resolve));
    return new RawClient(socket);
  }

  send(...lines: Array<string | object>): void {
    this.socket.write(lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  }

  /** The final reply (ok true/false) for `id`. */
  async reply(id: number | null, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find((x) => x.id === id && x.ok !== undefined);
      if (f) return f;
      if (Date.now() > deadline) throw new Error(`no reply for ${id}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
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
    raw.send('this is not json');
    assert.deepEqual((await raw.reply(null)).error?.code, 'bad_request');
    raw.send({ id: 1, op: 'no.such.op' }, { id: 2, op: 'files.read', path: 'relative' }, { id: 3, op: 'ping' });
    assert.equal((await raw.reply(1)).error?.code, 'unknown_op');
    assert.equal((await raw.reply(2)).error?.code, 'bad_request');
    assert.equal((await raw.reply(3)).ok, true);
    raw.send({ id: 4, op: 'ping', x: '_'.repeat(MAX_FRAME_BYTES) });
    const tooBig = await raw.reply(4);
    assert.equal(tooBig.error?.code, 'too_large', 'id sniffed from the head of an oversized frame');
    raw.send({ id: 5, op: 'ping' });
    assert.equal((await raw.reply(5)).ok, true);
  });

  void it(`refuses request ${MAX_CONCURRENT_REQUESTS + 1} with busy; cancel stops one`, async () => {
    for (let i = 0; i < MAX_CONCURRENT_REQUESTS; i++) raw.send({ id: 100 + i, op: 'exec', argv: ['sleep', '30'] });
    raw.send({ id: 99, op: 'ping' });
    assert.equal((await raw.reply(99)).error?.code, 'busy');
    const t0 = Date.now();
    for (let i = 0; i < MAX_CONCURRENT_REQUESTS; i++) raw.send({ id: 1000 + i, op: 'cancel', target: 100 + i });
    for (let i = 0; i < MAX_CONCURRENT_REQUESTS; i++) {
      assert.deepEqual((await raw.reply(1000 + i)).result, { cancelled: true });
      assert.equal((await raw.reply(100 + i)).error?.code, 'cancelled');
    }
    assert.ok(Date.now() - t0 < 5000);
    raw.send({ id: 98, op: 'cancel', target: 12345 });
    assert.deepEqual((await raw.reply(98)).result, { cancelled: false });
  });

  void it('rejects an upload whose sha256 or size does not match, leaving no file', async () => {
    const path = join(guest.dir, 'upload.bin');
    const data = Buffer.from('hello');
    raw.send(
      { id: 200, op: 'files.write', path, size: 5 },
      { id: 200, data: data.toString('base64') },
      { id: 200, end: true, sha256: '0'.repeat(64) },
    );
    assert.match((await raw.reply(200)).error?.message ?? '', /sha256 mismatch/);
    raw.send({ id: 201, op: 'files.write', path, size: 4 }, { id: 201, data: data.toString('base64') });
    assert.equal((await raw.reply(201)).error?.code, 'too_large');
    // Chunks for the failed upload keep coming: dropped without a reply.
    raw.send({ id: 201, data: data.toString('base64') }, { id: 201, end: true, sha256: 'a'.repeat(64) });
    const sha = createHash('sha256').update(data).digest('hex');
    raw.send(
      { id: 202, op: 'files.write', path, size: 5, mode: 0o640 },
      { id: 202, data: data.toString('base64') },
      { id: 202, end: true, sha256: sha },
    );
    assert.deepEqual((await raw.reply(202)).result, { size: 5, sha256: sha });
    assert.equal((await stat(path)).mode & 0o777, 0o640);
    assert.deepEqual(
      (await readdir(guest.dir)).filter((n) => n.includes('forkd-')),
      [],
    );
    assert.equal(raw.frames.filter((f) => f.id === 201).length, 1);
  });

  void it('aborts the requests of a host that disconnects', async () => {
    const other = await RawClient.open(guest.socketPath);
    other.send({ id: 1, op: 'exec', shell: 'echo $$; sleep 30' });
    while (!other.frames.some((f) => f.stream === 'stdout')) await new Promise((r) => setTimeout(r, 20));
    other.close();
    raw.send({ id: 300, op: 'ping' });
    assert.equal((await raw.reply(300)).ok, true, 'the other session is unaffected');
  });
});
