// BRANCH against the real daemon and real QEMU: a running sandbox (a file, and a background
// process whose state exists only in its memory) is snapshotted live; 3 grandchildren see the
// file byte-identical and the process with its state; the source moves on independently. A
// guest busy writing memory branches into children that run.
// Then the limits: 6 consecutive branches (pause of the 6th vs the 1st), 5 concurrent with the
// cap at 4 (one 503), the same tag twice (one 409), wait=false and a spawn meanwhile (409), a
// daemon killed during `writing` (failed or complete, never half visible), lineage and DELETE
// rules, the branches_in_flight gauge, and the leak check.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findLeaks, ourQemuProcesses } from '../helpers/leaks.js';
import {
  api,
  controllerDataDir,
  daemonArgs,
  errorCode,
  startDaemon,
  type ApiResponse,
  type DaemonProcess,
} from '../helpers/controller.js';
import { uniqueTag } from '../helpers/env.js';

interface BranchJson {
  tag: string;
  status: string;
  pause_ms: number;
  live_ms: number;
  total_ms: number;
  bytes: number;
  snapshot?: { parent_tag: string | null; branched_from: string | null; ancestors: string[] };
}
interface SnapJson {
  tag: string;
  status: string;
  error: string | null;
  parent_tag: string | null;
  branched_from: string | null;
  ancestors: string[];
  dependents: string[];
}

// The process keeps `seed` only in memory (its file is deleted) and counts seconds; SIGUSR1
// makes it write "seed-count" to /tmp/out.
const COUNTER = `echo $$ > /root/counter.pid
read v < /tmp/seed
rm /tmp/seed
n=0
trap 'echo "$v-$n" > /tmp/out' USR1
while :; do n=$((n+1)); sleep 1; done
`;
// Rewrites an 8 MiB tmpfs file without pause, counting rounds: the guest kernel's page cache,
// allocator and scheduler data change all the time.
const CHURN =
  'i=0; while :; do dd if=/dev/zero of=/tmp/churn bs=1M count=8 2>/dev/null; i=$((i+1)); echo $i > /tmp/churn.n; done';

describe('BRANCH a running sandbox', () => {
  let root: string;
  let dataDir: string;
  let args: string[];
  let d: DaemonProcess;
  const tag = uniqueTag('it-br');
  const call = (method: string, path: string, json?: unknown): Promise<ApiResponse> =>
    api(d.baseUrl, method, path, json === undefined ? {} : { json });
  const spawn = async (snapshotTag: string, n = 1): Promise<string[]> => {
    const res = await call('POST', '/v1/sandboxes', { snapshot_tag: snapshotTag, n });
    assert.equal(res.status, 201, res.text);
    const list = (res.json as { sandboxes: { id: string; state: string }[] }).sandboxes;
    for (const s of list) assert.equal(s.state, 'running', JSON.stringify(s));
    return list.map((s) => s.id);
  };
  const sh = async (id: string, cmd: string): Promise<string> => {
    const res = await call('POST', `/v1/sandboxes/${id}/exec`, { cmd });
    assert.equal(res.status, 200, res.text);
    const r = res.json as { exit_code: number; stdout: string; stderr: string };
    assert.equal(r.exit_code, 0, `${cmd}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const snapshot = async (t: string): Promise<SnapJson> => (await call('GET', `/v1/snapshots/${t}`)).json as SnapJson;
  const waitFor = async <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  };
  const settled = (t: string): Promise<SnapJson> =>
    waitFor(`snapshot ${t} to settle`, async () => {
      const s = await snapshot(t);
      return s.status === 'writing' ? undefined : s;
    });
  /** Asks the counter process for "seed-count". */
  const counter = async (id: string): Promise<{ seed: string; n: number }> => {
    await sh(id, 'rm -f /tmp/out; kill -USR1 "$(cat /root/counter.pid)"');
    const out = await waitFor(`the counter of ${id}`, async () => {
      const r = await call('POST', `/v1/sandboxes/${id}/exec`, { cmd: 'cat /tmp/out 2>/dev/null' });
      const text = (r.json as { stdout: string }).stdout.trim();
      return text.includes('-') ? text : undefined;
    });
    const [seed, n] = out.split('-');
    return { seed: seed!, n: Number(n) };
  };
  const branch = (id: string, body: Record<string, unknown> = {}): Promise<ApiResponse> =>
    call('POST', `/v1/sandboxes/${id}/branch`, body);
  let source: string;
  const seed = randomBytes(8).toString('hex');
  const blobSum = { value: '' };

  before(async () => {
    ({ root, dataDir } = await controllerDataDir(true));
    args = daemonArgs(dataDir, root, ['--branch-concurrency', '4']);
    d = await startDaemon(args);
    const res = await call('POST', '/v1/snapshots', { tag, mem_mib: 512, boot_wait_secs: 60 });
    assert.equal(res.status, 202, res.text);
    const s = await waitFor('the snapshot build', () => settled(tag), 300_000);
    assert.equal(s.status, 'ready', String(s.error));
    source = (await spawn(tag))[0]!;
    await sh(source, 'head -c 5000000 /dev/urandom > /root/blob.bin');
    blobSum.value = await sh(source, 'md5sum /root/blob.bin');
    await sh(source, `echo ${seed} > /tmp/seed`);
    const put = await api(d.baseUrl, 'PUT', `/v1/sandboxes/${source}/files?path=/root/counter.sh`, { body: COUNTER });
    assert.equal(put.status, 200, put.text);
    await sh(source, '(setsid sh /root/counter.sh >/dev/null 2>&1 </dev/null &) ; echo started');
    await waitFor('the counter to start', async () =>
      (await sh(source, 'test -e /tmp/seed || test ! -e /root/counter.pid && echo wait || echo ok')) === 'ok'
        ? true
        : undefined,
    );
  });

  after(async () => {
    if (d.proc.exitCode === null) {
      const list = ((await call('GET', '/v1/sandboxes')).json as { sandboxes: { id: string }[] }).sandboxes;
      for (const s of list) await call('DELETE', `/v1/sandboxes/${s.id}`);
      const del = await call('DELETE', `/v1/snapshots/${tag}?cascade=true`);
      assert.equal(del.status, 200, del.text);
      assert.equal(await d.stop(), 0);
    }
    assert.deepEqual(await findLeaks(dataDir), []);
    assert.deepEqual(await ourQemuProcesses(root), []);
    await rm(root, { recursive: true, force: true });
  });

  test('grandchildren of a BRANCH see the file and the live process; the source moves on', async () => {
    const before = await counter(source);
    assert.equal(before.seed, seed);
    const res = await branch(source, { tag: `${tag}-g` });
    assert.equal(res.status, 201, res.text);
    const b = res.json as BranchJson;
    assert.equal(b.status, 'ready');
    assert.ok(b.pause_ms >= 0 && b.pause_ms < b.live_ms, JSON.stringify(b));
    assert.ok(b.bytes > 0);
    assert.equal(b.snapshot?.parent_tag, tag);
    assert.equal(b.snapshot?.branched_from, source);
    assert.deepEqual(b.snapshot?.ancestors, [tag]);
    console.log(
      `branch: pause ${b.pause_ms.toFixed(1)} ms, live ${b.live_ms.toFixed(0)} ms, total ${b.total_ms.toFixed(0)} ms, ${b.bytes} bytes`,
    );

    // The source runs on: its counter advances and it can diverge.
    await sh(source, 'echo after-branch > /root/source-only');
    const kids = await spawn(`${tag}-g`, 3);
    for (const k of kids) {
      assert.equal(await sh(k, 'md5sum /root/blob.bin'), blobSum.value);
      assert.equal(await sh(k, 'test -e /root/source-only; echo $?'), '1');
      const pid = await sh(k, 'cat /root/counter.pid');
      assert.equal(await sh(k, `test -d /proc/${pid} && echo alive`), 'alive');
      const c = await counter(k);
      assert.equal(c.seed, seed, 'the in-memory seed survived the BRANCH');
      assert.ok(c.n >= before.n, `grandchild counter ${c.n} >= ${before.n}`);
    }
    // Each grandchild diverges alone.
    await sh(kids[0]!, 'echo mine > /root/only-0');
    assert.equal(await sh(kids[1]!, 'test -e /root/only-0; echo $?'), '1');
    const later = await counter(source);
    assert.equal(later.seed, seed);
    assert.ok(later.n >= before.n);

    // Lineage: the parent lists the branch as a dependent; DELETE follows the rules.
    assert.deepEqual((await snapshot(tag)).dependents, [`${tag}-g`]);
    const refused = await call('DELETE', `/v1/snapshots/${tag}`);
    assert.equal(refused.status, 409);
    const inUse = await call('DELETE', `/v1/snapshots/${tag}-g`);
    assert.equal(inUse.status, 409, 'its grandchildren run');
    for (const k of kids) assert.equal((await call('DELETE', `/v1/sandboxes/${k}`)).status, 204);
    // A grandchild of the grandchild snapshot is a second level of lineage.
    assert.equal((await call('DELETE', `/v1/snapshots/${tag}-g`)).status, 200);
  });

  // Under TCG a pre-copy BRANCH of a guest that keeps writing memory lost writes between passes:
  // the guest kernel of every child oopsed (seen: rb_erase in the scheduler) and its agent never
  // answered identity, in 2 of 6 tries. The copy BRANCH picks must give a consistent snapshot.
  test('a BRANCH of a guest busy writing memory: its children run and keep running', async () => {
    const busy = (await spawn(tag))[0]!;
    await sh(busy, `(setsid sh -c '${CHURN}' >/dev/null 2>&1 </dev/null &) ; echo started`);
    await waitFor('the churn to start', async () =>
      (await sh(busy, 'cat /tmp/churn.n 2>/dev/null || echo 0')) !== '0' ? true : undefined,
    );
    const res = await branch(busy, { tag: `${tag}-busy` });
    assert.equal(res.status, 201, res.text);
    const kids = await spawn(`${tag}-busy`, 2);
    for (const k of kids) {
      const first = Number(await sh(k, 'cat /tmp/churn.n'));
      // The churn loop came along and runs on in the child: the kernel under it is sound.
      await waitFor(`the churn of ${k} to advance`, async () =>
        Number(await sh(k, 'cat /tmp/churn.n')) > first + 2 ? true : undefined,
      );
      assert.equal(await sh(k, 'echo alive'), 'alive');
    }
    for (const id of [...kids, busy]) assert.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 204);
    assert.equal((await call('DELETE', `/v1/snapshots/${tag}-busy`)).status, 200);
  });

  // A pre-copy pause (KVM) is a few ms and scheduling noise on a shared host is of the same size
  // (12 identical pre-copy BRANCHes of one idle sandbox measured 1.7 .. 22.7 ms), so one sample
  // against another needs an allowance: the default downtime limit (20 ms), the pause QEMU is
  // allowed per BRANCH. Under TCG the pause is the whole copy (6 in a row measured 241 .. 389
  // ms on a loaded 2-core host), well inside twice the first. A pause that grows with each
  // BRANCH still fails this.
  const PAUSE_NOISE_MS = 20;
  test('6 consecutive BRANCHes all succeed; the 6th pauses at most twice as long as the 1st', async () => {
    const pauses: number[] = [];
    for (let i = 1; i <= 6; i++) {
      const res = await branch(source, { tag: `${tag}-s${i}` });
      assert.equal(res.status, 201, res.text);
      pauses.push((res.json as BranchJson).pause_ms);
    }
    console.log(`pauses of 6 consecutive branches (ms): ${pauses.map((p) => p.toFixed(1)).join(', ')}`);
    for (let i = 1; i <= 6; i++) assert.equal((await call('DELETE', `/v1/snapshots/${tag}-s${i}`)).status, 200);
    assert.ok(
      pauses[5]! <= 2 * pauses[0]! + PAUSE_NOISE_MS,
      `6th pause ${pauses[5]} ms vs 1st ${pauses[0]} ms (+${PAUSE_NOISE_MS} ms allowed for noise)`,
    );
  });

  test('5 concurrent BRANCHes with the cap at 4: exactly one 503 with Retry-After', async () => {
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => branch(source, { tag: `${tag}-c${i}` })));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [201, 201, 201, 201, 503], results.map((r) => r.text).join('\n'));
    const refused = results.find((r) => r.status === 503)!;
    assert.equal(errorCode(refused), 'busy');
    assert.ok(Number(refused.headers['retry-after']) > 0);
    const metrics = (await call('GET', '/metrics')).text;
    assert.match(metrics, /^forkd_branches_in_flight 0$/m);
    for (const r of results.filter((x) => x.status === 201))
      assert.equal((await call('DELETE', `/v1/snapshots/${(r.json as BranchJson).tag}`)).status, 200);
  });

  test('the same tag twice at once: one 409; an existing tag: 409', async () => {
    const t = `${tag}-dup`;
    const [a, b] = await Promise.all([branch(source, { tag: t }), branch(source, { tag: t })]);
    assert.deepEqual([a.status, b.status].sort(), [201, 409]);
    assert.equal(errorCode([a, b].find((r) => r.status === 409)!), 'already_exists');
    const again = await branch(source, { tag: t });
    assert.equal(again.status, 409);
    assert.equal((await call('DELETE', `/v1/snapshots/${t}`)).status, 200);
  });

  test('wait=false answers 202 before ready; a spawn meanwhile is 409; the gauge counts it', async () => {
    const res = await branch(source, { wait: false });
    assert.equal(res.status, 202, res.text);
    const b = res.json as BranchJson;
    assert.equal(b.status, 'writing');
    assert.match(b.tag, new RegExp(`^branch-${source}-\\d+$`));
    const metrics = (await call('GET', '/metrics')).text;
    const early = await call('POST', '/v1/sandboxes', { snapshot_tag: b.tag });
    const now = await snapshot(b.tag);
    if (now.status === 'writing' || early.status !== 201) {
      assert.equal(early.status, 409, early.text);
      assert.match(metrics, /^forkd_branches_in_flight 1$/m);
    } else {
      console.log('note: the snapshot was ready before the spawn; the 409 path was not exercised');
    }
    const done = await settled(b.tag);
    assert.equal(done.status, 'ready', String(done.error));
    const [k] = await spawn(b.tag);
    assert.equal((await counter(k!)).seed, seed);
    assert.equal((await call('DELETE', `/v1/sandboxes/${k}`)).status, 204);
    assert.equal((await call('DELETE', `/v1/snapshots/${b.tag}`)).status, 200);
  });

  test('a daemon killed during `writing`: the snapshot ends failed or complete, never half visible', async () => {
    const t = `${tag}-kill`;
    const res = await branch(source, { tag: t, wait: false });
    assert.equal(res.status, 202, res.text);
    d.proc.kill('SIGKILL');
    await d.stop();
    d = await startDaemon(args);
    const s = await settled(t);
    const dirs = await readdir(join(dataDir, 'snapshots'));
    assert.deepEqual(
      dirs.filter((n) => n.startsWith('.')),
      [],
      'no staging dir',
    );
    if (s.status === 'failed') {
      assert.ok(!dirs.includes(t), 'a failed BRANCH has no dir');
      assert.match(String(s.error), /daemon stopped/);
      const spawnFailed = await call('POST', '/v1/sandboxes', { snapshot_tag: t });
      assert.equal(spawnFailed.status, 409, spawnFailed.text);
    } else {
      assert.equal(s.status, 'ready');
      const [k] = await spawn(t);
      assert.equal((await counter(k!)).seed, seed);
      assert.equal((await call('DELETE', `/v1/sandboxes/${k}`)).status, 204);
    }
    console.log(`daemon killed during writing: the snapshot ended ${s.status}`);
    // The source was re-adopted and still runs, and a BRANCH of the adopted source works.
    assert.equal((await counter(source)).seed, seed);
    assert.equal((await call('DELETE', `/v1/snapshots/${t}`)).status, 200);
    const adopted = await branch(source, { tag: `${tag}-adopted` });
    assert.equal(adopted.status, 201, adopted.text);
    const [k] = await spawn(`${tag}-adopted`);
    assert.equal((await counter(k!)).seed, seed);
    assert.equal((await call('DELETE', `/v1/sandboxes/${k}`)).status, 204);
    assert.equal((await call('DELETE', `/v1/snapshots/${tag}-adopted`)).status, 200);
  });
});
