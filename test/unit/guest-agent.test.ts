// The native guest agent (src/guest/native/forkd-agent.c), compiled and run on the host over a
// Unix socket and driven by the real AgentClient: exec, background processes, eval (JS and
// Python, through the real workers), files, identity.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/agent/index.js';
import { isForkdError } from '../../src/lib/errors.js';
import { assertGone, hostPython, JS_WORKER, PY_WORKER, startGuest, type GuestHarness } from './agent-harness.js';

const noJsWorker = !existsSync(JS_WORKER) && `JS worker ${JS_WORKER} not built (node scripts/bundle-guest.mjs)`;
const noPyWorker = !existsSync(PY_WORKER) && `Python worker ${PY_WORKER} is missing`;

let guest: GuestHarness;
let client: AgentClient;

before(async () => {
  guest = await startGuest();
  client = await AgentClient.connect(guest.socketPath, { timeoutMs: 5000 });
});

after(async () => {
  client.close();
  await guest.close();
});

void describe('exec', () => {
  void it('returns stdout, stderr and the exit code', async () => {
    const r = await client.exec({ shell: 'echo out; echo err >&2; exit 3' });
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(r.exitCode, 3);
    assert.equal(r.signal, null);
    assert.equal(r.timedOut, false);
    assert.equal(r.truncated, false);
  });

  void it('passes argv verbatim, env, cwd and binary stdin', async () => {
    const input = randomBytes(100_000);
    const r = await client.exec({
      argv: ['sh', '-c', 'printf %s "$1 $FOO $(pwd)"; cat >&2', 'sh', 'a b;$(x)'],
      env: { FOO: 'bar' },
      cwd: guest.dir,
      stdin: input,
    });
    assert.equal(r.stdout.toString(), `a b;$(x) bar ${guest.dir}`);
    assert.ok(r.stderr.equals(input));
  });

  void it('reports a missing program as not_found', async () => {
    await assert.rejects(client.exec({ argv: ['/nonexistent/prog'] }), (err) => isForkdError(err, 'not_found'));
    await assert.rejects(client.exec({ argv: [] }), (err) => isForkdError(err, 'invalid_argument'));
  });

  void it('kills the whole process group on timeout', async () => {
    const t0 = Date.now();
    const r = await client.exec({ shell: 'sleep 100 & echo $!; echo $$; sleep 100', timeoutMs: 500 });
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(r.exitCode, null);
    assert.ok(Date.now() - t0 < 3000, 'returned soon after the timeout');
    const pids = r.stdout.toString().trim().split('\n').map(Number);
    assert.equal(pids.length, 2);
    await assertGone(pids);
  });

  void it('streams output before the command ends', async () => {
    let firstAt = 0;
    const t0 = Date.now();
    const r = await client.exec(
      { shell: 'echo first; sleep 1; echo second' },
      { onStdout: () => (firstAt ||= Date.now()) },
    );
    const doneAt = Date.now();
    assert.equal(r.stdout.toString(), 'first\nsecond\n');
    assert.ok(firstAt > 0 && doneAt - firstAt >= 700, `first chunk ${firstAt - t0} ms, done ${doneAt - t0} ms`);
  });

  void it('returns when the leader exits even if a daemonized grandchild holds the pipe', async () => {
    const t0 = Date.now();
    const r = await client.exec({ shell: 'sleep 30 & echo $!' });
    assert.equal(r.exitCode, 0);
    assert.ok(Date.now() - t0 < 2000);
    await client.exec({ argv: ['kill', r.stdout.toString().trim()] });
  });

  void it('flags output over maxOutputBytes as truncated but streams all of it', async () => {
    let streamed = 0;
    const r = await client.exec(
      { shell: 'head -c 300000 /dev/zero' },
      { maxOutputBytes: 100_000, onStdout: (c) => (streamed += c.length) },
    );
    assert.equal(r.stdout.length, 100_000);
    assert.equal(streamed, 300_000);
    assert.equal(r.truncated, true);
  });

  void it('cancels the guest command when the host gives up', async () => {
    const ctl = new AbortController();
    let pid = 0;
    const running = client.exec(
      { shell: 'echo $$; sleep 100' },
      { signal: ctl.signal, onStdout: (c) => (pid = Number(c.toString())) },
    );
    while (pid === 0) await new Promise((r) => setTimeout(r, 20));
    ctl.abort();
    await assert.rejects(running, (err) => isForkdError(err, 'timeout'));
    await assertGone([pid]);
  });
});

void describe('background processes', () => {
  void it('keeps running, can be waited for, killed and waited again', async () => {
    const { pid } = await client.exec({ shell: 'echo started; echo warn >&2; sleep 100', background: true });
    await assert.rejects(client.wait({ pid, timeoutMs: 300 }), (err) => isForkdError(err, 'timeout'));
    assert.deepEqual(await client.kill({ pid, signal: 'SIGTERM' }), { signalled: true });
    const r = await client.wait({ pid });
    assert.equal(r.signal, 'SIGTERM');
    assert.equal(r.stdout.toString(), 'started\n');
    assert.equal(r.stderr.toString(), 'warn\n');
    await assert.rejects(client.wait({ pid }), (err) => isForkdError(err, 'not_found'));
    await assert.rejects(client.kill({ pid: 999999 }), (err) => isForkdError(err, 'not_found'));
  });

  void it('keeps only the newest output of a chatty process', async () => {
    const { pid } = await client.exec({ shell: 'head -c 3000000 /dev/zero; echo END', background: true });
    const r = await client.wait({ pid, timeoutMs: 10_000 });
    assert.equal(r.exitCode, 0);
    assert.equal(r.truncated, true);
    assert.equal(r.stdout.length, 1024 * 1024);
    assert.ok(r.stdout.toString().endsWith('END\n'));
  });
});

void describe('eval (JS)', { skip: noJsWorker }, () => {
  void it('keeps state across calls and returns the last expression', async () => {
    assert.equal((await client.eval({ code: 'var counter = 41; counter + 1' })).value, 42);
    assert.equal((await client.eval({ code: 'counter++; counter' })).value, 42);
    assert.equal((await client.eval({ code: 'let lex = "kept"; globalThis.g = [1, 2]' })).value !== undefined, true);
    assert.deepEqual((await client.eval({ code: '[lex, g]' })).value, ['kept', [1, 2]]);
    assert.equal((await client.eval({ code: 'function f(x) { return x * 2 }; f(21)' })).value, 42);
  });

  void it('captures console per call, supports await, require and process', async () => {
    const r = await client.eval({
      code: 'console.log("hi", 1); console.error("oops"); await new Promise((r) => setTimeout(r, 10)); 7',
    });
    assert.deepEqual([r.value, r.stdout, r.stderr], [7, 'hi 1\n', 'oops\n']);
    assert.equal(
      (await client.eval({ code: 'await Promise.resolve(require("node:path").join("a", "b"))' })).value,
      'a/b',
    );
    assert.equal((await client.eval({ code: 'typeof process.pid' })).value, 'number');
    const [a, b] = await Promise.all([
      client.eval({ code: 'await new Promise((r) => setTimeout(r, 50)); console.log("A"); 1' }),
      client.eval({ code: 'console.log("B"); 2' }),
    ]);
    assert.deepEqual([a.stdout, b.stdout], ['A\n', 'B\n']);
  });

  void it('maps values: undefined -> null, non-JSON -> String()', async () => {
    assert.equal((await client.eval({ code: 'undefined' })).value, null);
    assert.equal((await client.eval({ code: '10n' })).value, '10');
    assert.match(String((await client.eval({ code: '(x) => x' })).value), /x => x|\(x\) => x/);
    const big = await client.eval({ code: '"x".repeat(300000)' });
    assert.equal(big.error?.name, 'ResultTooLarge');
  });

  void it('reports exceptions and timeouts', async () => {
    const r = await client.eval({ code: 'throw new TypeError("bad")' });
    assert.equal(r.error?.name, 'TypeError');
    assert.equal(r.error?.message, 'bad');
    assert.equal((await client.eval({ code: 'syntax error here' })).error?.name, 'SyntaxError');
    await assert.rejects(client.eval({ code: 'while (true) {}', timeoutMs: 200 }), (err) =>
      isForkdError(err, 'timeout'),
    );
    assert.equal((await client.eval({ code: 'counter' })).value, 42, 'the context survived the timeout');
  });

  void it('backs Math.random by the kernel CRNG', async () => {
    const r = await client.eval({ code: 'Array.from({ length: 1000 }, Math.random).every((x) => x >= 0 && x < 1)' });
    assert.equal(r.value, true);
  });
});

function hasPython(module?: string): boolean {
  const python = hostPython();
  if (!python) return false;
  try {
    execFileSync(python, ['-c', module ? `import ${module}` : 'pass'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

void describe('eval (Python)', { skip: (!hasPython() && 'python3 not installed') || noPyWorker }, () => {
  void it('warms a worker with preloaded modules and keeps globals', async () => {
    const warm = await client.warm({ pythonPreload: ['math'] });
    assert.equal(warm.js, true);
    assert.deepEqual(warm.python?.modules, ['math']);
    assert.equal((await client.eval({ code: 'math.sqrt(16)', language: 'python' })).value, 4);
    assert.equal((await client.eval({ code: 'a = 5\nprint("side", a)\na * 2', language: 'python' })).value, 10);
    const r = await client.eval({ code: 'import sys\nprint("x")\nprint("y", file=sys.stderr)\na', language: 'python' });
    assert.deepEqual([r.value, r.stdout, r.stderr], [5, 'x\n', 'y\n']);
  });

  void it('reports exceptions, maps values, survives timeouts', async () => {
    const r = await client.eval({ code: '1 / 0', language: 'python' });
    assert.equal(r.error?.name, 'ZeroDivisionError');
    assert.match(r.error?.stack ?? '', /ZeroDivisionError/);
    assert.equal((await client.eval({ code: 'float("nan")', language: 'python' })).value, 'nan');
    assert.equal((await client.eval({ code: 'x = 1', language: 'python' })).value, null);
    assert.equal(
      (await client.eval({ code: 'import os\nos.system("echo fd1")\n3', language: 'python' })).value,
      3,
      'fd-level output cannot corrupt the worker protocol',
    );
    await assert.rejects(client.eval({ code: 'while True: pass', language: 'python', timeoutMs: 300 }), (err) =>
      isForkdError(err, 'timeout'),
    );
    assert.equal((await client.eval({ code: 'a', language: 'python' })).value, 5, 'state survived the interrupt');
    assert.equal((await client.eval({ code: 'exit(1)', language: 'python' })).error?.name, 'SystemExit');
    assert.equal((await client.eval({ code: 'a', language: 'python' })).value, 5);
    await assert.rejects(client.warm({ pythonPreload: ['no_such_module_xyz'] }), (err) =>
      isForkdError(err, 'not_found'),
    );
    assert.deepEqual(
      (await client.warm({ pythonPreload: [] })).python?.modules,
      ['math'],
      'the bad module was not remembered',
    );
  });

  void it(
    'evaluates numpy.zeros(5).tolist() with numpy preloaded',
    { skip: !hasPython('numpy') && 'numpy not installed' },
    async () => {
      await client.warm({ pythonPreload: ['numpy'] });
      assert.deepEqual(
        (await client.eval({ code: 'numpy.zeros(5).tolist()', language: 'python' })).value,
        [0, 0, 0, 0, 0],
      );
      assert.deepEqual((await client.eval({ code: 'np.ones(2).tolist()', language: 'python' })).value, [1, 1]);
    },
  );
});

void describe('files', () => {
  void it('round-trips a 20 MiB random file byte for byte', async () => {
    const data = randomBytes(20 * 1024 * 1024);
    const path = join(guest.dir, 'big.bin');
    const written = await client.files.write(path, data, { mode: 0o600 });
    assert.equal(written.size, data.length);
    assert.equal(written.sha256, createHash('sha256').update(data).digest('hex'));
    assert.ok((await readFile(path)).equals(data));
    const back = await client.files.read(path);
    assert.ok(back.equals(data));
    const st = await client.files.stat(path);
    assert.deepEqual([st.name, st.type, st.size, st.mode & 0o777], ['big.bin', 'file', data.length, 0o600]);
  });

  void it('writes atomically: no temp file left, a cancelled upload leaves the old file', async () => {
    const path = join(guest.dir, 'atomic.txt');
    await client.files.write(path, 'old');
    const ctl = new AbortController();
    const upload = client.files.write(path, randomBytes(64 * 1024 * 1024), { signal: ctl.signal });
    setTimeout(() => ctl.abort(), 30);
    await assert.rejects(upload, (err) => isForkdError(err, 'timeout'));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await readFile(path, 'utf8'), 'old');
    const names = await readdir(guest.dir);
    assert.deepEqual(
      names.filter((n) => n.includes('forkd-')),
      [],
    );
    await client.files.write(path, 'new');
    assert.equal(await readFile(path, 'utf8'), 'new');
  });

  void it('lists, makes directories, removes; errors carry codes', async () => {
    const dir = join(guest.dir, 'd1', 'd2');
    await assert.rejects(client.files.mkdir(dir), (err) => isForkdError(err, 'not_found'));
    await client.files.mkdir(dir, { parents: true });
    await client.files.write(join(dir, 'f'), Buffer.alloc(0));
    assert.equal((await client.files.read(join(dir, 'f'))).length, 0);
    const list = await client.files.list(join(guest.dir, 'd1'));
    assert.deepEqual(
      list.entries.map((e) => [e.name, e.type]),
      [['d2', 'dir']],
    );
    assert.equal(list.truncated, false);
    await assert.rejects(client.files.remove(dir), (err) => isForkdError(err, 'already_exists'));
    await client.files.remove(join(guest.dir, 'd1'), { recursive: true });
    await assert.rejects(client.files.stat(dir), (err) => isForkdError(err, 'not_found'));
    await assert.rejects(client.files.read('relative/path'), (err) => isForkdError(err, 'invalid_argument'));
    await assert.rejects(client.files.read(guest.dir), (err) => isForkdError(err, 'invalid_argument'));
  });

  void it('renames a file over another and a directory; a missing source or a relative path is refused', async () => {
    const a = join(guest.dir, 'ren-a');
    const b = join(guest.dir, 'ren-b');
    await client.files.write(a, 'from a');
    await client.files.write(b, 'old b');
    await client.files.rename(a, b);
    assert.equal(await readFile(b, 'utf8'), 'from a');
    await assert.rejects(client.files.stat(a), (err) => isForkdError(err, 'not_found'));
    await client.files.mkdir(join(guest.dir, 'ren-d'));
    await client.files.write(join(guest.dir, 'ren-d', 'inner'), 'x');
    await client.files.rename(join(guest.dir, 'ren-d'), join(guest.dir, 'ren-e'));
    assert.equal(await readFile(join(guest.dir, 'ren-e', 'inner'), 'utf8'), 'x');
    await assert.rejects(client.files.rename(a, join(guest.dir, 'ren-c')), (err) => isForkdError(err, 'not_found'));
    await assert.rejects(client.files.rename('ren-b', b), (err) => isForkdError(err, 'invalid_argument'));
    await assert.rejects(client.files.rename(b, 'ren-c'), (err) => isForkdError(err, 'invalid_argument'));
  });
});

void describe('identity and ping', () => {
  void it('credits entropy, sets the clock (logged in test mode) and the hostname', async () => {
    const g = await startGuest();
    const c = await AgentClient.connect(g.socketPath);
    try {
      assert.equal((await c.ping()).sandboxId, null);
      const before = Date.now();
      const r = await c.identity({ sandboxId: 'sb-1', hostname: 'child-1' });
      assert.deepEqual([r.sandboxId, r.hostname], ['sb-1', 'child-1']);
      assert.ok(Math.abs(r.clockStepMs) < 5000);
      assert.equal(await readFile(g.hostnameFile, 'utf8'), 'child-1');
      // Entropy (and the CRNG reseed) first, then the clock: anything random after it differs per child.
      const lines = (await readFile(g.identityLog, 'utf8')).trim().split('\n');
      assert.equal(lines.length, 2, lines.join('\n'));
      const [cmd, hex] = (lines[0] ?? '').split(' ');
      assert.equal(cmd, 'entropy');
      assert.match(hex ?? '', /^[0-9a-f]{128}$/, '64 bytes as hex');
      const [set, msText] = (lines[1] ?? '').split(' ');
      assert.equal(set, 'settime');
      const ms = Number(msText);
      assert.ok(ms >= before - 1000 && ms <= Date.now() + 1000, lines[1]);
      const ping = await c.ping();
      assert.equal(ping.sandboxId, 'sb-1');
      assert.ok(ping.uptimeMs >= 0);
      await c.identity({ sandboxId: 'sb-2', hostname: 'child-2' });
      assert.equal(await readFile(g.hostnameFile, 'utf8'), 'child-2');
      assert.equal((await readFile(g.identityLog, 'utf8')).trim().split('\n').length, 4);
      assert.equal((await c.ping()).sandboxId, 'sb-2');
    } finally {
      c.close();
      await g.close();
    }
  });

  void it('fails identity clearly when the hostname cannot be set', async () => {
    const g = await startGuest({ hostnameFile: '/nonexistent/dir/hostname' });
    const c = await AgentClient.connect(g.socketPath);
    try {
      await assert.rejects(
        c.identity({ sandboxId: 'x', hostname: 'x' }),
        (err) => isForkdError(err, 'not_found') && /hostname/.test(err.message),
      );
      assert.equal((await c.ping()).sandboxId, null, 'a failed identity is not recorded');
    } finally {
      c.close();
      await g.close();
    }
  });
});

void describe('connections', () => {
  void it('keeps agent state across host connections (a restored child)', async () => {
    const { pid } = await client.exec({ shell: 'echo from-before; sleep 0.2', background: true });
    if (!noJsWorker) await client.eval({ code: 'var survivor = "still here"' });
    const second = await AgentClient.connect(guest.socketPath);
    if (!noJsWorker) assert.equal((await second.eval({ code: 'survivor' })).value, 'still here');
    assert.equal(
      (await second.wait({ pid })).stdout.toString(),
      'from-before\n',
      'a background process outlives its host',
    );
    second.close();
    second.close();
    await assert.rejects(second.ping(), (err) => isForkdError(err, 'agent_error'));
  });

  void it('limits requests in flight on the host side', async () => {
    const c = await AgentClient.connect(guest.socketPath);
    const running = Array.from({ length: 64 }, () => c.exec({ shell: 'sleep 0.3' }));
    await assert.rejects(c.ping(), (err) => isForkdError(err, 'busy'));
    const results = await Promise.all(running);
    assert.ok(results.every((r) => r.exitCode === 0));
    assert.equal((await c.ping()).agentVersion.length > 0, true);
    c.close();
  });
});
