// Issue 3 with real guests: exec (output, exit code, timeout killing the process group,
// streaming), background processes, JS eval state, a 20 MiB file round trip, and a fresh
// identity per child (random bytes, hostname, clock), plus a hostile fake agent next to a
// real sandbox that must not notice.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSnapshot } from '../../src/core/snapshot-create.js';
import { disposeAll, forkChildren } from '../../src/core/fork.js';
import { removeSnapshot } from '../../src/core/snapshot-store.js';
import type { CoreContext } from '../../src/core/context.js';
import type { Sandbox } from '../../src/core/sandbox.js';
import { AgentClient } from '../../src/agent/client.js';
import {
  AGENT_PROTOCOL_VERSION,
  decodeWireFrame,
  encodeWireFrame,
  LineSplitter,
  MAX_FRAME_BYTES,
} from '../../src/protocol/index.js';
import { ensureImage, testCore, uniqueTag } from '../helpers/env.js';
import { findLeaks } from '../helpers/leaks.js';

async function sh(child: Sandbox, cmd: string, timeoutMs = 30_000): Promise<string> {
  const r = await child.agent.exec({ shell: cmd, timeoutMs });
  assert.equal(r.exitCode, 0, `${cmd}: exit ${String(r.exitCode)} ${r.stderr.toString()}`);
  return r.stdout.toString('utf8').trim();
}

describe('guest agent in forked children', () => {
  let core: CoreContext;
  const tag = uniqueTag('it-agent');
  let children: Sandbox[] = [];

  before(async () => {
    await ensureImage('node'); // JS eval needs the Node runtime
    core = await testCore();
    // The parent's clock starts at 1970 (no RTC) and is set back further here: children must
    // still end up within 2 s of the host, i.e. identity really sets the clock.
    await createSnapshot(core, {
      tag,
      image: 'node',
      memMiB: 512,
      vcpus: 1,
      warmup: ['date -s @1000000000 >/dev/null'],
      bootTimeoutMs: 180_000,
    });
    children = (await forkChildren(core, { tag, n: 3 })).children;
    assert.equal(children.length, 3);
  });

  after(async () => {
    await disposeAll(children);
    await removeSnapshot(core.paths, tag).catch(() => undefined);
    assert.deepEqual(await findLeaks(), []);
  });

  test('each child has its own random bytes, hostname and the host clock', async () => {
    const rand = await Promise.all(children.map((c) => sh(c, 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"')));
    assert.equal(new Set(rand).size, 3, `urandom must differ: ${rand.join(' ')}`);
    const js = await Promise.all(
      children.map((c) =>
        c.agent.eval({
          code: "[require('crypto').randomBytes(16).toString('hex'), require('crypto').randomUUID(), Math.random()]",
        }),
      ),
    );
    assert.equal(
      new Set(js.map((r) => JSON.stringify(r.value))).size,
      3,
      'Node crypto and Math.random differ per child',
    );
    const names = await Promise.all(children.map((c) => sh(c, 'hostname')));
    assert.deepEqual(
      names,
      children.map((c) => c.id),
    );
    for (const c of children) {
      const before = Date.now();
      const r = await c.agent.eval({ code: 'Date.now()' });
      const after = Date.now();
      const guestMs = r.value as number;
      // The guest's reading lies inside [before, after] if the clocks agree; allow 2 s either way.
      assert.ok(
        guestMs > before - 2000 && guestMs < after + 2000,
        `clock of ${c.id} off: guest ${guestMs}, host ${before}..${after}`,
      );
    }
  });

  test('exec returns stdout, stderr and the exit code', async () => {
    const r = await children[0]!.agent.exec({ shell: 'echo out; echo err >&2; exit 3' });
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(r.exitCode, 3);
    const argv = await children[0]!.agent.exec({ argv: ['/bin/echo', 'a b', '$HOME;|'] });
    assert.equal(argv.stdout.toString(), 'a b $HOME;|\n', 'argv is passed verbatim, no shell');
  });

  test('exec timeout kills the whole process group', async () => {
    const c = children[0]!;
    const r = await c.agent.exec({ shell: 'sleep 300 & echo $! > /tmp/bg.pid; sleep 300', timeoutMs: 1500 });
    assert.equal(r.timedOut, true);
    const bg = await sh(c, 'cat /tmp/bg.pid');
    const alive = await c.agent.exec({ shell: `kill -0 ${bg} 2>/dev/null; echo $?` });
    assert.equal(alive.stdout.toString().trim(), '1', 'the background sleep of the timed-out command is gone');
  });

  test('output streams before the command ends', async () => {
    let firstChunkAt: number | undefined;
    const started = Date.now();
    const r = await children[1]!.agent.exec(
      { shell: 'echo first; sleep 3; echo second' },
      { onStdout: () => (firstChunkAt ??= Date.now()) },
    );
    const endedAt = Date.now();
    assert.equal(r.stdout.toString(), 'first\nsecond\n');
    assert.ok(
      firstChunkAt !== undefined && endedAt - firstChunkAt >= 2000,
      `first chunk ${firstChunkAt! - started} ms, end ${endedAt - started} ms`,
    );
  });

  test('a background process survives, can be killed and waited for', async () => {
    const c = children[1]!;
    const { pid } = await c.agent.exec({ shell: 'echo started; sleep 1000', background: true });
    assert.ok(pid > 0);
    assert.equal(await sh(c, `kill -0 ${pid} && echo alive`), 'alive');
    await c.agent.kill({ pid });
    const done = await c.agent.wait({ pid, timeoutMs: 10_000 });
    assert.ok(done.signal !== null || done.exitCode !== 0, 'it ended by the signal');
    assert.equal(done.stdout.toString(), 'started\n');
  });

  test('JS eval keeps state across calls', async () => {
    const c = children[2]!;
    const a = await c.agent.eval({ code: 'globalThis.counter = 41; counter' });
    assert.equal(a.value, 41);
    const b = await c.agent.eval({ code: 'console.log("side"); ++counter' });
    assert.equal(b.value, 42);
    assert.equal(b.stdout, 'side\n');
    const err = await c.agent.eval({ code: 'throw new TypeError("nope")' });
    assert.equal(err.error?.name, 'TypeError');
    // Other children have their own context.
    const other = await children[0]!.agent.eval({ code: 'typeof counter' });
    assert.equal(other.value, 'undefined');
  });

  test('a 20 MiB binary file round-trips byte-identical', async () => {
    const c = children[2]!;
    const data = randomBytes(20 * 1024 * 1024);
    await c.agent.files.write('/root/blob.bin', data);
    assert.equal(
      await sh(c, 'sha256sum /root/blob.bin | cut -d" " -f1', 60_000),
      createHash('sha256').update(data).digest('hex'),
    );
    const back = await c.agent.files.read('/root/blob.bin');
    assert.ok(back.equals(data));
    const st = await c.agent.files.stat('/root/blob.bin');
    assert.equal(st.size, data.length);
    await c.agent.files.remove('/root/blob.bin');
    await assert.rejects(c.agent.files.stat('/root/blob.bin'));
  });

  test('a hostile fake agent fails cleanly while a real sandbox keeps working', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'forkd-hostile-'));
    const sock = join(dir, 'agent.sock');
    // Answers hello properly, then floods garbage and a 100 MB frame without a delimiter.
    const server: Server = createServer((s) => {
      let answered = false;
      const splitter = new LineSplitter(
        MAX_FRAME_BYTES,
        (encoded) => {
          if (answered) return;
          answered = true;
          const hello = decodeWireFrame(encoded);
          s.write(encodeWireFrame('ok', hello.id, { protocolVersion: AGENT_PROTOCOL_VERSION, agentVersion: 'evil' }));
          s.write(Buffer.concat([Buffer.from('not a frame\0'), encodeWireFrame('ok', 999, {})]));
          const junk = Buffer.alloc(1024 * 1024, 0x61);
          let sent = 0;
          const pump = (): void => {
            while (sent < 100 && s.write(junk)) sent++;
            if (sent < 100) s.once('drain', pump);
          };
          pump();
        },
        () => undefined,
      );
      s.on('data', (d: Buffer) => splitter.push(d));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const rssBefore = process.memoryUsage().rss;
      const evil = await AgentClient.connect(sock, { timeoutMs: 5000 });
      const [bad, good] = await Promise.allSettled([
        evil.ping({ timeoutMs: 3000 }),
        children[0]!.agent.exec({ shell: 'echo fine' }),
      ]);
      assert.equal(bad.status, 'rejected');
      assert.equal(good.status, 'fulfilled');
      assert.equal(good.status === 'fulfilled' && good.value.stdout.toString(), 'fine\n');
      evil.close();
      assert.ok(process.memoryUsage().rss - rssBefore < 96 * 1024 * 1024, 'host memory stays bounded');
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
