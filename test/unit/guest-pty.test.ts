// Interactive processes (issue 13): the native guest agent run on the host (agent-harness.ts)
// driven through the real AgentClient and the real SandboxProcesses registry: the pid announced
// before any output, stdin kept open (input, close, back-pressure), pseudo-terminals (tty, size,
// resize, echo, ^C, kill), timeouts killing the group, many consumers with bounded queues, and
// what a hostile frame gets, in both directions.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/agent/index.js';
import { SandboxProcesses, type ProcessEvent, type ProcessStream } from '../../src/core/processes.js';
import { readSnapshotMeta } from '../../src/core/snapshot-meta.js';
import { isForkdError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import {
  AGENT_PROTOCOL_VERSION,
  decodeWireFrame,
  encodeWireFrame,
  LineSplitter,
  MAX_FRAME_BYTES,
  MAX_INPUT_CHUNK_BYTES,
  PROCESS_INPUT_BUFFER_BYTES,
  type DecodedFrame,
  type WireRecord,
} from '../../src/protocol/index.js';
import { writeFakeSnapshot } from '../helpers/fake-snapshot.js';
import { assertGone, startGuest, type GuestHarness } from './agent-harness.js';

let guest: GuestHarness;
let client: AgentClient;
let procs: SandboxProcesses;

before(async () => {
  guest = await startGuest();
  client = await AgentClient.connect(guest.socketPath, { timeoutMs: 5000 });
  procs = new SandboxProcesses(client, silentLogger);
});

after(async () => {
  procs.dispose('test over');
  client.close();
  await guest.close();
});

type End = Extract<ProcessEvent, { type: 'end' }>;

/** Reads a process's events in the background: its output so far as text, and its end. */
function follow(stream: ProcessStream) {
  const events: ProcessEvent[] = [];
  let out = '';
  const waiters = new Set<() => void>();
  const end = (async (): Promise<End> => {
    for await (const ev of stream.events) {
      events.push(ev);
      if ('data' in ev) out += ev.data.toString('latin1');
      for (const w of waiters) w();
      if (ev.type === 'end') return ev;
    }
    throw new Error('events finished without an end');
  })();
  end.catch(() => undefined); // a test that expects a failure awaits it itself
  return {
    events,
    end,
    get out() {
      return out;
    },
    async waitFor(re: RegExp, ms = 5000): Promise<void> {
      const deadline = Date.now() + ms;
      while (!re.test(out)) {
        if (Date.now() > deadline) throw new Error(`${String(re)} not seen in ${JSON.stringify(out)}`);
        await new Promise<void>((r) => {
          waiters.add(r);
          setTimeout(r, 50);
        });
      }
    },
  };
}

void describe('pid announcement', () => {
  void it('gives the pid before any output, and the exit after all of it', async () => {
    const order: string[] = [];
    let pid = 0;
    const done = await client.runInteractive(
      { shell: 'echo $$; echo err >&2; exit 4' },
      {
        onStarted: (p) => {
          pid = p;
          order.push('started');
        },
        onOutput: (kind, data) => order.push(`${kind}:${data.toString().trim()}`),
      },
    );
    assert.equal(order[0], 'started');
    assert.deepEqual(order.slice(1).sort(), ['stderr:err', `stdout:${pid}`]);
    assert.equal(done.exitCode, 4);
    assert.equal(done.timedOut, false);
  });
});

void describe('stdin', () => {
  void it('cat echoes what is sent, in order, 1 MiB through the bounded buffer, and exits when input closes', async () => {
    const s = await procs.start({ argv: ['cat'], stdin: true, tag: 'cat' });
    assert.deepEqual(
      procs.list().find((p) => p.pid === s.pid),
      {
        pid: s.pid,
        tag: 'cat',
        argv: ['cat'],
        env: {},
        pty: false,
      },
    );
    const r = follow(s);
    await procs.sendInput(s.pid, Buffer.from('hello\n'));
    await r.waitFor(/^hello\n$/);
    const big = randomBytes(1024 * 1024);
    await Promise.all([procs.sendInput(s.pid, big), procs.sendInput(s.pid, Buffer.from('tail'))]);
    await procs.closeInput(s.pid);
    const end = await r.end;
    assert.deepEqual([end.exitCode, end.signal, end.timedOut], [0, null, false]);
    assert.equal(r.events[0]?.type, 'start');
    const output = Buffer.concat(r.events.flatMap((e) => ('data' in e ? [e.data] : [])));
    const expected = Buffer.concat([Buffer.from('hello\n'), big, Buffer.from('tail')]);
    assert.equal(
      createHash('sha256').update(output).digest('hex'),
      createHash('sha256').update(expected).digest('hex'),
    );
    assert.ok(r.events.every((e) => e.type !== 'pty'));
    assert.equal(
      procs.list().find((p) => p.pid === s.pid),
      undefined,
      'an ended process is gone from the list',
    );
    await assert.rejects(procs.sendInput(s.pid, Buffer.from('x')), (err) => isForkdError(err, 'not_found'));
  });

  void it('without stdin: input is refused and stdin reads as empty', async () => {
    const running = await procs.start({ argv: ['sleep', '100'] });
    await assert.rejects(procs.sendInput(running.pid, Buffer.from('x')), (err) => isForkdError(err, 'invalid_state'));
    await assert.rejects(procs.closeInput(running.pid), (err) => isForkdError(err, 'invalid_state'));
    await procs.signal(running.pid, 'SIGKILL');
    assert.equal((await follow(running).end).signal, 'SIGKILL');
    const cat = follow(await procs.start({ argv: ['cat'] }));
    assert.equal((await cat.end).exitCode, 0);
    assert.equal(cat.out, '', 'stdin was empty');
  });

  void it('a start aborted by its caller before the pid is refused; after it, the process goes on', async () => {
    const ctl = new AbortController();
    ctl.abort();
    await assert.rejects(procs.start({ argv: ['true'] }, ctl.signal));
    const later = new AbortController();
    const s = await procs.start({ argv: ['cat'], stdin: true }, later.signal);
    later.abort();
    const r = follow(s);
    await procs.sendInput(s.pid, Buffer.from('still here\n'));
    await r.waitFor(/still here/);
    await procs.closeInput(s.pid);
    assert.equal((await r.end).exitCode, 0);
  });

  void it('a process that never reads: the guest answers busy past its buffer, memory stays bounded', async () => {
    let pid = 0;
    const ctl = new AbortController();
    const running = client.runInteractive(
      { argv: ['sleep', '100'], stdin: true },
      { signal: ctl.signal, onStarted: (p) => (pid = p), onOutput: () => undefined },
    );
    while (pid === 0) await new Promise((r) => setTimeout(r, 10));
    const chunk = Buffer.alloc(MAX_INPUT_CHUNK_BYTES, 0x61);
    let accepted = 0;
    let busy = false;
    for (let i = 0; i < 64 && !busy; i++) {
      try {
        await client.input({ pid, data: chunk });
        accepted += chunk.length;
      } catch (err) {
        assert.ok(isForkdError(err, 'busy'), String(err));
        busy = true;
      }
    }
    assert.ok(busy, `every one of ${accepted} bytes was accepted`);
    // The pipe holds at most its capacity (64 KiB by default, 1 MiB at most); the rest waits in the bounded buffer.
    assert.ok(accepted <= PROCESS_INPUT_BUFFER_BYTES + 1024 * 1024, `${accepted} bytes accepted`);
    ctl.abort();
    await assert.rejects(running);
    await assertGone([pid]);
  });
});

void describe('pseudo-terminal', () => {
  void it('is the controlling terminal, has the requested size, resizes, echoes input', async () => {
    const s = await procs.start({
      shell:
        'tty; stty size; [ -t 0 ] && [ -t 2 ] && echo TTY012; echo ctty >/dev/tty; read line; stty size; echo "got $line"',
      pty: { cols: 100, rows: 30 },
    });
    assert.equal(procs.list().find((p) => p.pid === s.pid)?.pty, true);
    const r = follow(s);
    await r.waitFor(/ctty/);
    assert.match(r.out, /^\/dev\/pts\/\d+\r\n30 100\r\nTTY012\r\nctty\r\n$/);
    await procs.resize(s.pid, 120, 40);
    await procs.sendInput(s.pid, Buffer.from('abc\n'));
    const end = await r.end;
    assert.equal(end.exitCode, 0);
    assert.match(r.out, /ctty\r\nabc\r\n40 120\r\ngot abc\r\n$/, 'input echoed by the terminal, then the new size');
    assert.ok(
      r.events.slice(1, -1).every((e) => e.type === 'pty'),
      'stdout and stderr are one pty stream',
    );
  });

  void it('^C interrupts the foreground process; ^D ends input; SIGTERM reaches the whole group', async () => {
    const a = await procs.start({ argv: ['sleep', '100'], pty: { cols: 80, rows: 24 } });
    await procs.sendInput(a.pid, Buffer.from([3]));
    assert.equal((await follow(a).end).signal, 'SIGINT');

    const b = await procs.start({ argv: ['cat'], pty: { cols: 80, rows: 24 } });
    const rb = follow(b);
    await procs.sendInput(b.pid, Buffer.from('x'));
    await rb.waitFor(/x/);
    await procs.closeInput(b.pid); // ^D after "x" flushes the line; a second one is EOF
    await procs.closeInput(b.pid);
    assert.equal((await rb.end).exitCode, 0);

    const c = await procs.start({ shell: 'sleep 100 & echo $!; sleep 100', pty: { cols: 80, rows: 24 } });
    const rc = follow(c);
    await rc.waitFor(/\d+\r\n/);
    const grandchild = Number(rc.out.trim());
    await procs.signal(c.pid, 'SIGTERM');
    const end = await rc.end;
    assert.equal(end.signal, 'SIGTERM');
    await assertGone([c.pid, grandchild]);
  });

  void it('refuses resize without a terminal and bad sizes', async () => {
    await assert.rejects(procs.start({ argv: ['true'], pty: { cols: 0, rows: 10 } }), (err) =>
      isForkdError(err, 'invalid_argument'),
    );
    const s = await procs.start({ argv: ['sleep', '100'], stdin: true });
    await assert.rejects(procs.resize(s.pid, 80, 24), (err) => isForkdError(err, 'invalid_state'));
    await assert.rejects(client.resize({ pid: s.pid, cols: 80, rows: 24 }), (err) =>
      isForkdError(err, 'invalid_argument'),
    );
    await procs.signal(s.pid, 'SIGKILL');
    assert.equal((await follow(s).end).signal, 'SIGKILL');
  });
});

void describe('process lifetime', () => {
  void it('a timeout kills the whole group', async () => {
    const s = await procs.start({ shell: 'sleep 100 & echo $!; sleep 100', timeoutMs: 500 });
    const r = follow(s);
    await r.waitFor(/\d+\n/);
    const end = await r.end;
    assert.deepEqual([end.timedOut, end.signal, end.exitCode], [true, 'SIGKILL', null]);
    await assertGone([s.pid, Number(r.out.trim())]);
  });

  void it('outlives its consumers; connect follows from now on; a consumer that never reads is cut off alone', async () => {
    const s = await procs.start({ argv: ['cat'], stdin: true });
    const first = follow(s);
    await procs.sendInput(s.pid, Buffer.from('one\n'));
    await first.waitFor(/one/);
    // Every consumer leaves: the process keeps running.
    await s.events[Symbol.asyncIterator]().return?.();
    await first.end.catch(() => undefined);
    assert.ok(procs.list().some((p) => p.pid === s.pid));
    const later = follow(procs.connect(s.pid));
    const idle = procs.connect(s.pid); // never read
    await procs.sendInput(s.pid, Buffer.from('two\n'));
    await later.waitFor(/^two\n$/);
    const flood = randomBytes(5 * 1024 * 1024);
    await procs.sendInput(s.pid, flood);
    await later.waitFor(new RegExp(`^two\\n[^]{${flood.length}}$`), 20_000);
    const it = idle.events[Symbol.asyncIterator]();
    await assert.rejects(
      (async () => {
        for (;;) if ((await it.next()).done) return;
      })(),
      (err) => isForkdError(err, 'busy'),
    );
    await procs.closeInput(s.pid);
    assert.equal((await later.end).exitCode, 0);
    assert.throws(
      () => procs.connect(s.pid),
      (err) => isForkdError(err, 'not_found'),
    );
    assert.throws(
      () => procs.connect(424242),
      (err) => isForkdError(err, 'not_found'),
    );
  });

  void it('dispose ends every process and consumer, and refuses new ones', async () => {
    const own = new SandboxProcesses(client, silentLogger);
    const s = await own.start({ shell: 'echo $$; sleep 100' });
    const r = follow(s);
    await r.waitFor(/\d+\n/);
    own.dispose('sandbox released');
    const end = await r.end;
    assert.equal(end.error, 'sandbox released');
    await assertGone([s.pid]);
    await assert.rejects(own.start({ argv: ['true'] }), (err) => isForkdError(err, 'invalid_state'));
    assert.deepEqual(own.list(), []);
  });
});

/** Raw frames to the agent, bypassing the host's own checks. */
async function rawRequest(params: WireRecord, id = 7): Promise<DecodedFrame> {
  const socket = connect(guest.socketPath);
  await new Promise((r) => socket.once('connect', r));
  socket.write(Buffer.alloc(1));
  try {
    return await new Promise<DecodedFrame>((resolve) => {
      const split = new LineSplitter(
        MAX_FRAME_BYTES,
        (f) => {
          const d = decodeWireFrame(f);
          if (d.id === id && (d.kind === 'ok' || d.kind === 'error')) resolve(d);
        },
        () => undefined,
      );
      socket.on('data', (c: Buffer) => split.push(c));
      socket.write(encodeWireFrame('request', id, params));
    });
  } finally {
    socket.destroy();
  }
}

const codeOf = (f: DecodedFrame): unknown => (f.kind === 'error' ? (f.payload as WireRecord).code : 'ok');

async function agentFigures(): Promise<{ rssKiB: number; ticks: number }> {
  const status = await readFile(`/proc/${guest.pid}/status`, 'utf8');
  const fields = (await readFile(`/proc/${guest.pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
  return { rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]), ticks: Number(fields[11]) + Number(fields[12]) };
}

void describe('bounds', () => {
  void it('idle interactive processes cost the agent no CPU', async () => {
    const a = await procs.start({ argv: ['cat'], stdin: true });
    const b = await procs.start({ argv: ['sh'], pty: { cols: 80, rows: 24 } });
    await new Promise((r) => setTimeout(r, 200));
    const t0 = (await agentFigures()).ticks;
    await new Promise((r) => setTimeout(r, 1000));
    const used = (await agentFigures()).ticks - t0;
    assert.ok(used <= 5, `${used} ticks of CPU in 1 s with an open stdin and an idle terminal`);
    await procs.signal(a.pid, 'SIGKILL');
    await procs.signal(b.pid, 'SIGKILL');
  });

  void it('a terminal flooding output: a reader that never reads is cut off, memory stays bounded on both sides', async () => {
    const s = await procs.start({ argv: ['yes', 'flood'], pty: { cols: 80, rows: 24 } }); // s.events not read yet
    let seen = 0;
    let rss = 0;
    const reader = (async () => {
      for await (const ev of procs.connect(s.pid).events) {
        if ('data' in ev) seen += ev.data.length;
        if (ev.type === 'end') return ev;
      }
      throw new Error('no end');
    })();
    // The other reader got more than the unread one may queue: that one was cut off by now.
    while (seen < 6 * 1024 * 1024) await new Promise((r) => setTimeout(r, 20));
    rss = (await agentFigures()).rssKiB;
    assert.ok(procs.bufferedBytes <= 4 * 1024 * 1024, `${procs.bufferedBytes} bytes queued on the host`);
    const it = s.events[Symbol.asyncIterator]();
    await assert.rejects(it.next(), (err) => isForkdError(err, 'busy') && /fell more than/.test(err.message));
    assert.ok(rss < 48 * 1024, `agent RSS ${rss} KiB`);
    await procs.signal(s.pid, 'SIGKILL');
    assert.equal((await reader).signal, 'SIGKILL');
    assert.equal(procs.bufferedBytes, 0, 'every queue is released once read or cut off');
  });
});

void describe('hostile requests to the agent', () => {
  void it('refuses oversized input, unknown pids, bad sizes, pty in the background', async () => {
    const s = await procs.start({ argv: ['sleep', '100'], stdin: true });
    await assert.rejects(client.input({ pid: s.pid, data: Buffer.alloc(MAX_INPUT_CHUNK_BYTES + 1) }), (err) =>
      isForkdError(err, 'invalid_argument'),
    );
    const over = await rawRequest({ op: 'input', pid: s.pid, data: Buffer.alloc(MAX_INPUT_CHUNK_BYTES + 1) });
    assert.equal(codeOf(over), 'bad_request');
    assert.equal(codeOf(await rawRequest({ op: 'input', pid: s.pid, data: 'text, not bytes' })), 'bad_request');
    assert.equal(codeOf(await rawRequest({ op: 'input', pid: 999999, data: Buffer.from('x') })), 'not_found');
    assert.equal(codeOf(await rawRequest({ op: 'input.close', pid: 0 })), 'bad_request');
    assert.equal(codeOf(await rawRequest({ op: 'resize', pid: s.pid, cols: 80, rows: 24 })), 'bad_request');
    assert.equal(codeOf(await rawRequest({ op: 'resize', pid: s.pid, cols: 70000, rows: 24 })), 'bad_request');
    const bgPty = { op: 'exec', argv: ['true'], background: true, pty: { cols: 80, rows: 24 } };
    assert.equal(codeOf(await rawRequest(bgPty)), 'bad_request');
    assert.equal(
      codeOf(await rawRequest({ op: 'exec', argv: ['true'], pty: { cols: 'wide', rows: 24 } })),
      'bad_request',
    );
    assert.equal(codeOf(await rawRequest({ op: 'exec', argv: ['true'], pty: [80, 24] })), 'bad_request');
    assert.ok(
      procs.list().some((p) => p.pid === s.pid),
      'the process was not disturbed',
    );
    await procs.signal(s.pid, 'SIGKILL');
    await follow(s).end;
  });
});

void describe('hostile guest frames', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(join(tmpdir(), 'forkd-pty-fake-'))));
  after(() => rm(dir, { recursive: true, force: true }));

  /** A fake agent answering every exec with `frames(id)`. */
  async function fake(frames: (id: number) => Buffer[]): Promise<{ path: string; close(): void }> {
    const path = join(dir, `${Math.random().toString(36).slice(2)}.sock`);
    const sockets: Socket[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      const split = new LineSplitter(
        MAX_FRAME_BYTES,
        (f) => {
          const d = decodeWireFrame(f);
          const op = (d.payload as WireRecord).op;
          if (op === 'hello') {
            socket.write(
              encodeWireFrame('ok', d.id, { protocolVersion: AGENT_PROTOCOL_VERSION, agentVersion: 'fake' }),
            );
          } else if (op === 'exec') for (const b of frames(d.id)) socket.write(b);
        },
        () => undefined,
      );
      socket.on('data', (c: Buffer) => split.push(c));
    });
    await new Promise<void>((r) => server.listen(path, r));
    return {
      path,
      close: () => {
        for (const s of sockets) s.destroy();
        server.close();
      },
    };
  }

  const exit = { exitCode: 0, signal: null, timedOut: false, truncated: false, durationMs: 1 };
  const cases: Array<[string, (id: number) => Buffer[], { pty?: boolean }]> = [
    [
      'output before the pid',
      (id) => [encodeWireFrame('stdout', id, Buffer.from('x')), encodeWireFrame('started', id, { pid: 5 })],
      {},
    ],
    [
      'a second started frame',
      (id) => [encodeWireFrame('started', id, { pid: 5 }), encodeWireFrame('started', id, { pid: 6 })],
      {},
    ],
    ['pid 0', (id) => [encodeWireFrame('started', id, { pid: 0 })], {}],
    ['a huge pid', (id) => [encodeWireFrame('started', id, { pid: 2 ** 40 })], {}],
    [
      'pty output from a pipe process',
      (id) => [encodeWireFrame('started', id, { pid: 5 }), encodeWireFrame('pty', id, Buffer.from('x'))],
      {},
    ],
    [
      'stdout from a pty process',
      (id) => [encodeWireFrame('started', id, { pid: 5 }), encodeWireFrame('stdout', id, Buffer.from('x'))],
      { pty: true },
    ],
    ['an exit without a pid', (id) => [encodeWireFrame('ok', id, exit)], {}],
  ];
  for (const [name, frames, opts] of cases) {
    void it(`${name}: the process fails with agent_error, nothing thrown elsewhere`, async () => {
      const f = await fake(frames);
      const c = await AgentClient.connect(f.path, { timeoutMs: 2000 });
      const p = new SandboxProcesses(c, silentLogger);
      try {
        const outcome = await p
          .start({ argv: ['x'], ...(opts.pty ? { pty: { cols: 80, rows: 24 } } : {}) })
          .then((s) => follow(s).end)
          .then(
            (end) => end.error ?? 'ended cleanly',
            (err: unknown) => (isForkdError(err, 'agent_error') ? 'agent_error' : String(err)),
          );
        assert.ok(outcome === 'agent_error' || /protocol violation/.test(outcome), outcome);
      } finally {
        p.dispose('test over');
        c.close();
        f.close();
      }
    });
  }
});

void describe('protocol version', () => {
  void it('a snapshot whose agent speaks protocol 2 is refused with the re-create message', async () => {
    const data = await mkdtemp(join(tmpdir(), 'forkd-pty-snap-'));
    try {
      await writeFakeSnapshot(data, 'old-agent', { qemuVersion: '8.2.2', accel: 'tcg' });
      const dir = join(data, 'snapshots', 'old-agent');
      assert.equal((await readSnapshotMeta(dir, 'old-agent')).agentProtocol, AGENT_PROTOCOL_VERSION);
      const meta = JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')) as { agentProtocol: number };
      meta.agentProtocol = 2;
      await writeFile(join(dir, 'snapshot.json'), JSON.stringify(meta));
      await assert.rejects(
        readSnapshotMeta(dir, 'old-agent'),
        (err) =>
          isForkdError(err, 'incompatible_snapshot') &&
          /speaking protocol 2; this forkd speaks 3: re-create the snapshot/.test(err.message),
      );
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  });
});
