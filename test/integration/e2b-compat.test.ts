// The official `e2b` SDK (npm `e2b`, unmodified) against a real forkd-controller serving its
// E2B-compatible API (--e2b-bind) and real QEMU guests restored from a snapshot of the lean
// `default` image: create from a tag, commands (streamed output, exit errors, background,
// timeout), files (10 MiB byte-identical), list by metadata, setTimeout and expiry, kill,
// fork, snapshots, a wrong key, and examples/e2b-compat.ts with only the E2B variables set.
// Ends with the leak check.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  AuthenticationError,
  CommandExitError,
  FileNotFoundError,
  RateLimitError,
  Sandbox,
  SandboxError,
  SandboxNotFoundError,
  TimeoutError,
} from 'e2b';
import { findLeaks, ourQemuProcesses } from '../helpers/leaks.js';
import { api, controllerDataDir, daemonArgs, startDaemon, type DaemonProcess } from '../helpers/controller.js';
import { runNode, uniqueTag } from '../helpers/env.js';

const TOKEN = randomBytes(24).toString('hex');
const MAX_ACTIVE = 4;
const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));

/** Rejects with an instance of `cls` (and returns it for more checks). */
async function rejectsAs<T extends Error>(p: Promise<unknown>, cls: new (...a: never[]) => T): Promise<T> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${cls.name}`);
}

describe('the e2b SDK against forkd --e2b-bind', () => {
  let root: string;
  let dataDir: string;
  let d: DaemonProcess;
  let e2bUrl: string;
  const tag = uniqueTag('it-e2b');
  /** Connection options of every SDK call: only the two URLs and the key differ from E2B's cloud. */
  let conn: { apiUrl: string; sandboxUrl: string; apiKey: string };

  /** Starts the daemon (again) on this data dir; the E2B URL is in its `listening` line. */
  async function start(): Promise<void> {
    const tokenFile = join(root, 'token');
    // At most MAX_ACTIVE sandboxes: the capacity test fills the host.
    d = await startDaemon(
      daemonArgs(dataDir, root, [
        '--token-file',
        tokenFile,
        '--e2b-bind',
        '127.0.0.1:0',
        '--max-sandboxes',
        String(MAX_ACTIVE),
      ]),
    );
    const line = d
      .stderr()
      .split('\n')
      .find((l) => l.includes('"msg":"listening"'))!;
    e2bUrl = (JSON.parse(line) as { e2b_url: string }).e2b_url;
    assert.match(e2bUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    conn = { apiUrl: e2bUrl, sandboxUrl: e2bUrl, apiKey: TOKEN };
  }

  before(async () => {
    ({ root, dataDir } = await controllerDataDir(true));
    const tokenFile = join(root, 'token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    await start();
    const res = await api(d.baseUrl, 'POST', '/v1/snapshots', { token: TOKEN, json: { tag, mem_mib: 256 } });
    assert.equal(res.status, 202, res.text);
    await buildSnapshotWithToken();
  });

  async function buildSnapshotWithToken(): Promise<void> {
    for (;;) {
      const s = (await api(d.baseUrl, 'GET', `/v1/snapshots/${tag}`, { token: TOKEN })).json as {
        status: string;
        error: string | null;
      };
      if (s.status === 'ready') return;
      assert.notEqual(s.status, 'failed', String(s.error));
      await sleep(250);
    }
  }

  after(async () => {
    if (d?.proc.exitCode === null) {
      const list = (await api(d.baseUrl, 'GET', '/v1/sandboxes', { token: TOKEN })).json as {
        sandboxes: { id: string }[];
      };
      for (const s of list.sandboxes) await api(d.baseUrl, 'DELETE', `/v1/sandboxes/${s.id}`, { token: TOKEN });
      const snaps = (await api(d.baseUrl, 'GET', '/v1/snapshots', { token: TOKEN })).json as {
        snapshots: { tag: string }[];
      };
      for (const s of snaps.snapshots)
        await api(d.baseUrl, 'DELETE', `/v1/snapshots/${s.tag}?cascade=true`, { token: TOKEN }).catch(() => undefined);
      assert.equal(await d.stop(), 0);
    }
    // Other suites run QEMU on this host at the same time: only ids our daemon saw are ours.
    const audit = await readFile(join(root, 'audit.log'), 'utf8').catch(() => '');
    const ours = new Set(`${audit}\n${d.stderr()}`.match(/sb-[a-z2-7]{16}/g) ?? []);
    const leaks = (await findLeaks(dataDir)).filter((l) => {
      const id = /sb-[a-z2-7]{16}/.exec(l)?.[0];
      if (id !== undefined) return ours.has(id);
      return !/^(nftables table inet forkd|link forkd-br0|bridge address claim)/.test(l);
    });
    assert.deepEqual(leaks, []);
    assert.deepEqual(await ourQemuProcesses(root), []);
    await rm(root, { recursive: true, force: true });
  });

  test('Sandbox.create from a snapshot tag; commands.run streams stdout/stderr, with the create envs and cwd', async () => {
    const sb = await Sandbox.create(tag, { ...conn, envs: { GREETING: 'hello' }, metadata: { suite: 'e2b' } });
    try {
      assert.match(sb.sandboxId, /^sb-/);
      const out: string[] = [];
      const err: string[] = [];
      const r = await sb.commands.run('echo "$GREETING $WHO"; echo oops >&2; pwd', {
        envs: { WHO: 'world' },
        cwd: '/tmp',
        onStdout: (s) => void out.push(s),
        onStderr: (s) => void err.push(s),
      });
      assert.equal(r.exitCode, 0);
      assert.equal(r.stdout, 'hello world\n/tmp\n');
      assert.equal(r.stderr, 'oops\n');
      assert.equal(out.join(''), r.stdout);
      assert.equal(err.join(''), r.stderr);
      const info = await sb.getInfo();
      assert.equal(info.templateId, tag);
      assert.deepEqual(info.metadata, { suite: 'e2b' });
      // E2B's default lifetime when create names none: 300 s.
      const left = info.endAt.getTime() - Date.now();
      assert.ok(left > 250_000 && left <= 300_000, `${left} ms left`);
      assert.equal(await sb.isRunning(), true);
    } finally {
      await sb.kill();
    }
  });

  test('a non-zero exit raises CommandExitError with its code; background, wait, list, kill; a timeout', async () => {
    const sb = await Sandbox.create(tag, conn);
    try {
      const e = await rejectsAs(sb.commands.run('echo partial; echo bad >&2; exit 3'), CommandExitError);
      assert.equal(e.exitCode, 3);
      assert.equal(e.stdout, 'partial\n');
      assert.equal(e.stderr, 'bad\n');

      const h = await sb.commands.run('sleep 1; echo done', { background: true });
      assert.ok(h.pid > 0);
      const done = await h.wait();
      assert.deepEqual([done.exitCode, done.stdout], [0, 'done\n']);

      const long = await sb.commands.run('sleep 600', { background: true, timeoutMs: 0 });
      const listed = await sb.commands.list();
      assert.ok(
        listed.some((p) => p.pid === long.pid && p.args.join(' ').includes('sleep 600')),
        JSON.stringify(listed),
      );
      assert.equal(await long.kill(), true);
      const killed = await rejectsAs(long.wait(), CommandExitError);
      assert.notEqual(killed.exitCode, 0);
      assert.equal(await sb.commands.kill(long.pid), false); // gone now

      const t0 = Date.now();
      await rejectsAs(sb.commands.run('sleep 30', { timeoutMs: 2000 }), TimeoutError);
      assert.ok(Date.now() - t0 < 20_000, `timed out after ${Date.now() - t0} ms`);
    } finally {
      await sb.kill();
    }
  });

  test('PTY: create, sendInput, resize, read the output; stdin of a command: send, close', async () => {
    const sb = await Sandbox.create(tag, conn);
    try {
      let out = '';
      const decoder = new TextDecoder();
      const pty = await sb.pty.create({
        cols: 80,
        rows: 24,
        onData: (d) => void (out += decoder.decode(d, { stream: true })),
      });
      const until = async (re: RegExp): Promise<void> => {
        const t0 = Date.now();
        while (!re.test(out)) {
          assert.ok(Date.now() - t0 < 20_000, `no ${String(re)} in ${JSON.stringify(out.slice(-500))}`);
          await sleep(50);
        }
      };
      const type = (text: string): Promise<void> => sb.pty.sendInput(pty.pid, new TextEncoder().encode(text));
      await type('stty size; echo "tty=$(tty)"\n');
      await until(/24 80\r?\n/);
      await until(/tty=\/dev\/pts\//);
      await sb.pty.resize(pty.pid, { cols: 100, rows: 40 });
      await type('stty size\n');
      await until(/40 100\r?\n/);
      await type('exit 7\n');
      const end = await rejectsAs(pty.wait(), CommandExitError);
      assert.equal(end.exitCode, 7);

      const cat = await sb.commands.run('cat; echo " (eof)"', { background: true, stdin: true });
      await sb.commands.sendStdin(cat.pid, 'typed in');
      await sb.commands.closeStdin(cat.pid);
      const r = await cat.wait();
      assert.equal(r.stdout, 'typed in (eof)\n');
    } finally {
      await sb.kill();
    }
  });

  test('files: write/read/list/exists/makeDir/rename/remove, and 10 MiB byte-identical', async () => {
    const sb = await Sandbox.create(tag, conn);
    try {
      const info = await sb.files.write('/tmp/e2b/a/hello.txt', 'hi there');
      assert.equal(info.path, '/tmp/e2b/a/hello.txt');
      assert.equal(await sb.files.read('/tmp/e2b/a/hello.txt'), 'hi there');
      assert.equal(await sb.files.exists('/tmp/e2b/a/hello.txt'), true);
      assert.equal(await sb.files.exists('/tmp/e2b/nope'), false);
      const many = await sb.files.write([
        { path: '/tmp/multi/one.txt', data: 'one' },
        { path: '/tmp/multi/deeper/two.txt', data: new TextEncoder().encode('two').buffer },
      ]);
      assert.deepEqual(
        many.map((w) => w.path),
        ['/tmp/multi/one.txt', '/tmp/multi/deeper/two.txt'],
      );
      assert.equal(await sb.files.read('/tmp/multi/deeper/two.txt'), 'two');
      assert.equal(await sb.files.makeDir('/tmp/e2b/b/c'), true);
      assert.equal(await sb.files.makeDir('/tmp/e2b/b/c'), false);
      const moved = await sb.files.rename('/tmp/e2b/a/hello.txt', '/tmp/e2b/b/moved.txt');
      assert.deepEqual([moved.name, moved.path, moved.type], ['moved.txt', '/tmp/e2b/b/moved.txt', 'file']);
      const top = await sb.files.list('/tmp/e2b');
      assert.deepEqual(top.map((e) => [e.name, e.type]).sort(), [
        ['a', 'dir'],
        ['b', 'dir'],
      ]);
      const deep = await sb.files.list('/tmp/e2b', { depth: 3 });
      assert.deepEqual(deep.map((e) => e.path).sort(), [
        '/tmp/e2b/a',
        '/tmp/e2b/b',
        '/tmp/e2b/b/c',
        '/tmp/e2b/b/moved.txt',
      ]);
      const file = deep.find((e) => e.name === 'moved.txt')!;
      assert.equal(file.size, 8);
      assert.match(file.permissions, /^-rw/);
      const big = randomBytes(10 * 1024 * 1024);
      await sb.files.write('/tmp/big.bin', big.buffer.slice(big.byteOffset, big.byteOffset + big.length));
      const back = await sb.files.read('/tmp/big.bin', { format: 'bytes' });
      assert.equal(back.length, big.length);
      assert.ok(Buffer.from(back).equals(big), '10 MiB came back different');
      // forkd does not watch directories: a clean error, not a hang.
      await rejectsAs(
        sb.files.watchDir('/tmp', () => undefined),
        SandboxError,
      );
      await sb.files.remove('/tmp/e2b');
      assert.equal(await sb.files.exists('/tmp/e2b'), false);
      await rejectsAs(sb.files.read('/tmp/e2b/b/moved.txt'), FileNotFoundError);
    } finally {
      await sb.kill();
    }
  });

  test('Sandbox.list filters by metadata and pages; kill; a killed sandbox is not found', async () => {
    const job = randomBytes(4).toString('hex');
    const a = await Sandbox.create(tag, { ...conn, metadata: { job, role: 'a' } });
    const b = await Sandbox.create(tag, { ...conn, metadata: { job, role: 'b' } });
    const other = await Sandbox.create(tag, { ...conn, metadata: { job: 'other' } });
    try {
      const mine = await Sandbox.list({ ...conn, query: { metadata: { job } } }).nextItems();
      assert.deepEqual(mine.map((s) => s.sandboxId).sort(), [a.sandboxId, b.sandboxId].sort());
      assert.ok(mine.every((s) => s.state === 'running' && s.templateId === tag));
      const onlyB = await Sandbox.list({ ...conn, query: { metadata: { job, role: 'b' } } }).nextItems();
      assert.deepEqual(
        onlyB.map((s) => s.sandboxId),
        [b.sandboxId],
      );
      const pager = Sandbox.list({ ...conn, query: { metadata: { job } }, limit: 1 });
      const first = await pager.nextItems();
      assert.equal(first.length, 1);
      assert.equal(pager.hasNext, true);
      const second = await pager.nextItems();
      assert.equal(second.length, 1);
      assert.equal(pager.hasNext, false);
      assert.notEqual(first[0]!.sandboxId, second[0]!.sandboxId);
      assert.deepEqual(await Sandbox.list({ ...conn, query: { state: ['paused'] } }).nextItems(), []);
    } finally {
      assert.equal(await Sandbox.kill(a.sandboxId, conn), true);
      await b.kill();
      await other.kill();
    }
    assert.equal(await Sandbox.kill(a.sandboxId, conn), false);
    await rejectsAs(Sandbox.getInfo(a.sandboxId, conn), SandboxNotFoundError);
    await rejectsAs(Sandbox.connect(a.sandboxId, conn), SandboxNotFoundError);
    assert.equal(await a.isRunning(), false);
  });

  test('setTimeout shortens the life and the sandbox expires; connect gets a working handle', async () => {
    const sb = await Sandbox.create(tag, { ...conn, timeoutMs: 600_000 });
    const again = await Sandbox.connect(sb.sandboxId, conn);
    assert.equal((await again.commands.run('echo via-connect')).stdout, 'via-connect\n');
    await sb.setTimeout(3000);
    const info = await sb.getInfo();
    assert.ok(info.endAt.getTime() - Date.now() <= 3000, 'endAt moved');
    const t0 = Date.now();
    while ((await sb.isRunning()) && Date.now() - t0 < 30_000) await sleep(250);
    assert.equal(await sb.isRunning(), false);
    assert.ok(Date.now() - t0 >= 1500, 'expired no earlier than asked');
    // What E2B answers for a command in a sandbox that is gone.
    await rejectsAs(sb.commands.run('true'), SandboxNotFoundError);
    await rejectsAs(Sandbox.getInfo(sb.sandboxId, conn), SandboxNotFoundError);
  });

  test('fork: the children see the source files and diverge; snapshots become tags to create from', async () => {
    const src = await Sandbox.create(tag, { ...conn, envs: { FROM: 'source' } });
    try {
      await src.files.write('/root/state.txt', 'shared');
      const forks = await src.fork({ count: 2 });
      assert.equal(forks.length, 2);
      const [c1, c2] = forks.map((f) => {
        assert.ok(f instanceof Sandbox, f instanceof Error ? f.message : 'not a Sandbox');
        return f;
      });
      try {
        for (const c of [c1!, c2!]) {
          assert.equal(await c.files.read('/root/state.txt'), 'shared');
          assert.equal((await c.commands.run('echo $FROM')).stdout, 'source\n');
        }
        await c1!.files.write('/root/state.txt', 'child one');
        assert.equal(await c2!.files.read('/root/state.txt'), 'shared');
        assert.equal(await src.files.read('/root/state.txt'), 'shared');
      } finally {
        await c1!.kill();
        await c2!.kill();
      }
      const snap = await src.createSnapshot();
      assert.ok(snap.snapshotId);
      const listed = await src.listSnapshots().nextItems();
      assert.ok(
        listed.some((s) => s.snapshotId === snap.snapshotId),
        JSON.stringify(listed),
      );
      const fromSnap = await Sandbox.create(snap.snapshotId, conn);
      try {
        assert.equal(await fromSnap.files.read('/root/state.txt'), 'shared');
      } finally {
        await fromSnap.kill();
      }
      const paused = await rejectsAs(src.pause(), SandboxError);
      assert.match(paused.message, /does not support pause/);
    } finally {
      await src.kill();
    }
  });

  test('a full host: create is refused with RateLimitError, and a fork past capacity gets one per fork', async () => {
    const live = await Promise.all(Array.from({ length: MAX_ACTIVE }, () => Sandbox.create(tag, conn)));
    try {
      // retries: 0, so the SDK does not wait out Retry-After itself first.
      await rejectsAs(Sandbox.create(tag, { ...conn, retries: 0 }), RateLimitError);
      const forks = await live[0]!.fork({ count: 2 });
      assert.equal(forks.length, 2);
      for (const f of forks)
        assert.ok(f instanceof RateLimitError, String(f instanceof Error ? f.message : 'a sandbox'));
    } finally {
      await Promise.all(live.map((s) => s.kill()));
    }
  });

  test('a wrong API key is refused (AuthenticationError); a wrong access token too', async () => {
    await rejectsAs(Sandbox.create(tag, { ...conn, apiKey: 'wrong-key-0123456789' }), AuthenticationError);
    await rejectsAs(Sandbox.list({ ...conn, apiKey: 'wrong-key-0123456789' }).nextItems(), AuthenticationError);
    const sb = await Sandbox.create(tag, conn);
    try {
      const res = await fetch(`${e2bUrl}/filesystem.Filesystem/Stat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'e2b-sandbox-id': sb.sandboxId, 'x-access-token': 'nope' },
        body: JSON.stringify({ path: '/' }),
      });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { code: string }).code, 'unauthenticated');
      // A method name that is a property of every object is not a handler.
      const own = (sb as unknown as { envdAccessToken: string }).envdAccessToken;
      for (const method of ['constructor', 'toString', 'StreamInput', 'WatchDirX']) {
        const r = await fetch(`${e2bUrl}/process.Process/${method}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'e2b-sandbox-id': sb.sandboxId, 'x-access-token': own },
          body: '{}',
        });
        assert.equal(r.status, 501, method);
        assert.equal(((await r.json()) as { code: string }).code, 'unimplemented');
      }
      const other = await Sandbox.create(tag, conn);
      try {
        // One sandbox's token does not open another.
        const cross = await fetch(`${e2bUrl}/files?path=/etc/hostname`, {
          headers: {
            'e2b-sandbox-id': other.sandboxId,
            'x-access-token': (sb as unknown as { envdAccessToken: string }).envdAccessToken,
          },
        });
        assert.equal(cross.status, 401);
      } finally {
        await other.kill();
      }
    } finally {
      await sb.kill();
    }
  });

  test('examples/e2b-compat.ts: unmodified E2B code, only E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY set', async () => {
    const r = await runNode(join(EXAMPLES, 'e2b-compat.js'), [], {
      env: { E2B_API_URL: e2bUrl, E2B_SANDBOX_URL: e2bUrl, E2B_API_KEY: TOKEN, E2B_TEMPLATE: tag },
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(out, { echo: 'hello from the sandbox\n', file: 'notes', forks: ['fork 0', 'fork 1'], left: 0 });
  });

  test('a restarted daemon still accepts the access token of a sandbox and applies its envs', async () => {
    const sb = await Sandbox.create(tag, { ...conn, envs: { KEPT: 'across restarts' } });
    const token = (sb as unknown as { envdAccessToken: string }).envdAccessToken;
    assert.equal(await d.stop(), 0); // sandboxes are left running for the next daemon to adopt
    await start();
    const res = await fetch(`${e2bUrl}/filesystem.Filesystem/Stat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'e2b-sandbox-id': sb.sandboxId, 'x-access-token': token },
      body: JSON.stringify({ path: '/etc' }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(((await res.json()) as { entry: { type: string } }).entry.type, 'FILE_TYPE_DIRECTORY');
    const again = await Sandbox.connect(sb.sandboxId, conn);
    assert.equal((again as unknown as { envdAccessToken: string }).envdAccessToken, token);
    assert.equal((await again.commands.run('echo "$KEPT"')).stdout, 'across restarts\n');
    assert.equal(await again.kill(), true);
  });
});
