// Interactive processes in a real guest (issue 13), through what the daemon's routes use:
// `sandboxes.running(id).processes` of a SandboxManager over a real SQLite store, on a sandbox
// restored from a snapshot. A terminal session (tty, size, resize, echo, ^C), stdin to `cat`,
// a signal to a pty process group, a timeout, and the release of the sandbox ending them all.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSnapshot } from '../../src/core/snapshot-create.js';
import { removeSnapshot } from '../../src/core/snapshot-store.js';
import type { CoreContext } from '../../src/core/context.js';
import { SandboxManager } from '../../src/core/controller/sandboxes.js';
import { noHooks } from '../../src/core/controller/events.js';
import { StateStore } from '../../src/core/state/store.js';
import type { ProcessEvent, ProcessStream, SandboxProcesses } from '../../src/core/processes.js';
import { isForkdError } from '../../src/lib/errors.js';
import { ensureImage, testCore, uniqueTag } from '../helpers/env.js';
import { findLeaks } from '../helpers/leaks.js';

type End = Extract<ProcessEvent, { type: 'end' }>;

/** Reads a process's events in the background: output so far as text, and its end. */
function follow(stream: ProcessStream) {
  const types = new Set<string>();
  let out = '';
  const end = (async (): Promise<End> => {
    for await (const ev of stream.events) {
      types.add(ev.type);
      if ('data' in ev) out += ev.data.toString('latin1');
      if (ev.type === 'end') return ev;
    }
    throw new Error('events finished without an end');
  })();
  end.catch(() => undefined); // awaited by the test that needs it
  return {
    types,
    end,
    get out() {
      return out;
    },
    async waitFor(re: RegExp, ms = 30_000): Promise<void> {
      const deadline = Date.now() + ms;
      while (!re.test(out)) {
        if (Date.now() > deadline) throw new Error(`${String(re)} not seen in ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

describe('interactive processes in a real guest', () => {
  let core: CoreContext;
  let dbDir: string;
  let store: StateStore;
  let sandboxes: SandboxManager;
  let id: string;
  let procs: SandboxProcesses;
  const tag = uniqueTag('it-procs');

  before(async () => {
    await ensureImage('default');
    core = await testCore();
    await createSnapshot(core, { tag, image: 'default', memMiB: 256, vcpus: 1, warmup: [], bootTimeoutMs: 180_000 });
    dbDir = await mkdtemp(join(tmpdir(), 'forkd-procs-db-'));
    await chmod(dbDir, 0o755);
    store = StateStore.open(dbDir);
    sandboxes = new SandboxManager(core, store, noHooks, { maxSandboxes: 2, defaultEgress: 'deny' });
    const [row] = await sandboxes.create({ snapshotTag: tag, n: 1, ttlSecs: 600 });
    assert.equal(row?.state, 'running');
    id = row.id;
    procs = sandboxes.running(id).processes;
  });

  after(async () => {
    await sandboxes.close({ kill: true });
    store.close();
    await rm(dbDir, { recursive: true, force: true });
    await removeSnapshot(core.paths, tag).catch(() => undefined);
    assert.deepEqual(await findLeaks(), []);
  });

  test('a terminal session: tty, size, resize, echoed input, ^C', async () => {
    const s = await procs.start({
      shell: 'tty; stty size; read line; stty size; echo "got $line"; sleep 100',
      pty: { cols: 90, rows: 20 },
      tag: 'term',
    });
    assert.deepEqual(
      procs.list().map((p) => [p.pid, p.tag, p.pty]),
      [[s.pid, 'term', true]],
    );
    const r = follow(s);
    await r.waitFor(/20 90\r\n/);
    assert.match(r.out, /^\/dev\/pts\/\d+\r\n20 90\r\n$/);
    await procs.resize(s.pid, 132, 43);
    await procs.sendInput(s.pid, Buffer.from('hello\n'));
    await r.waitFor(/got hello\r\n/);
    assert.match(r.out, /hello\r\n43 132\r\ngot hello\r\n$/, 'echoed by the terminal, then the new size');
    await procs.sendInput(s.pid, Buffer.from([3])); // ^C: SIGINT to the foreground group
    const end = await r.end;
    assert.equal(end.signal, 'SIGINT');
    assert.deepEqual([...r.types].sort(), ['end', 'pty', 'start']);
    assert.deepEqual(procs.list(), []);
  });

  test('stdin: cat echoes input and exits when it is closed; a second reader joins midway', async () => {
    const s = await procs.start({ argv: ['cat'], stdin: true });
    const first = follow(s);
    await procs.sendInput(s.pid, Buffer.from('one\n'));
    await first.waitFor(/^one\n$/);
    const second = follow(procs.connect(s.pid));
    await procs.sendInput(s.pid, Buffer.from('two\n'));
    await second.waitFor(/^two\n$/);
    await procs.closeInput(s.pid);
    assert.deepEqual([(await first.end).exitCode, (await second.end).exitCode], [0, 0]);
    assert.equal(first.out, 'one\ntwo\n');
    assert.deepEqual([...first.types].sort(), ['end', 'start', 'stdout']);
  });

  test('a signal reaches a pty process group; a timeout kills the whole group', async () => {
    const a = await procs.start({ shell: 'sleep 300 & sleep 300', pty: { cols: 80, rows: 24 } });
    await procs.signal(a.pid, 'SIGTERM');
    assert.equal((await follow(a).end).signal, 'SIGTERM');
    const b = await procs.start({ shell: 'sleep 300 & echo $!; sleep 300', timeoutMs: 1500 });
    const rb = follow(b);
    await rb.waitFor(/\d+\n/);
    const end = await rb.end;
    assert.deepEqual([end.timedOut, end.signal], [true, 'SIGKILL']);
    const grandchild = rb.out.trim();
    const check = await sandboxes
      .running(id)
      .agent.exec({ shell: `kill -0 ${grandchild} 2>/dev/null && echo alive || echo gone` });
    assert.equal(check.stdout.toString().trim(), 'gone', 'the background child of the timed-out shell was killed too');
  });

  test('releasing the sandbox ends its processes and their readers', async () => {
    const s = await procs.start({ argv: ['sleep', '300'], stdin: true });
    const r = follow(s);
    await sandboxes.delete(id);
    const end = await r.end;
    assert.equal(end.exitCode, null);
    assert.match(end.error ?? '', /released/);
    await assert.rejects(procs.start({ argv: ['true'] }), (err) => isForkdError(err, 'invalid_state'));
  });
});
