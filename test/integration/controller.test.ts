// forkd-controller with real guests, over HTTP against the real daemon process: a snapshot
// built through the API, 5 sandboxes used (exec, stream, eval, files) and deleted without a
// trace, a daemon restart that re-adopts 3 live sandboxes, kill -9 of QEMU (adopted and
// fresh), TTL expiry, snapshot lineage rules, and the audit log and metrics of all of it.
// Limits and egress through the API: cgroup files, and traffic to test servers in namespaces
// this test creates (test/helpers/test-net.ts). Every response is validated against the
// OpenAPI document (api()).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { access, link, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findLeaks, ourQemuProcesses } from '../helpers/leaks.js';
import {
  api,
  controllerDataDir,
  daemonArgs,
  errorCode,
  runDaemonToExit,
  startDaemon,
  type ApiResponse,
  type DaemonProcess,
} from '../helpers/controller.js';
import { runCli, uniqueTag } from '../helpers/env.js';
import { netnsName } from '../../src/host/netns.js';
import { SandboxCgroup } from '../../src/host/cgroups.js';
import { SERVERS, fetchArgv, serverUrl, startTestNet, type TestNet } from '../helpers/test-net.js';
// Zombie-aware: an adopted QEMU is reaped by init, possibly a moment after it died.
import { processAlive as alive } from '../../src/host/proc-stat.js';

const TOKEN = randomBytes(24).toString('hex');

interface SandboxJson {
  id: string;
  state: string;
  pid: number | null;
  reason: string | null;
  warnings: string[];
  snapshot_tag: string;
  netns: string | null;
  memory_limit_mib: number | null;
  cpu_limit: number | null;
  pids_limit: number | null;
  per_child_netns: boolean;
  egress: unknown;
}

/** The memory limit of a sandbox's cgroup in bytes, on cgroup v2 or v1, or undefined. */
async function cgroupMemoryLimit(id: string): Promise<number | undefined> {
  for (const file of [
    `/sys/fs/cgroup/forkd/${id}/memory.max`,
    `/sys/fs/cgroup/memory/forkd/${id}/memory.limit_in_bytes`,
  ]) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text !== undefined) return Number(text.trim());
  }
  return undefined;
}

/** The named fields of a JSON answer, for one deepEqual. */
const pick = (v: unknown, names: string[]): Record<string, unknown> =>
  Object.fromEntries(names.map((n) => [n, (v as Record<string, unknown>)[n]]));

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

describe('forkd-controller with real sandboxes', () => {
  let root: string;
  let dataDir: string;
  let args: string[];
  let d: DaemonProcess;
  let net: TestNet | undefined;
  const tag = uniqueTag('it-ctl');
  const call = (
    method: string,
    path: string,
    opts: { json?: unknown; body?: Buffer | string } = {},
  ): Promise<ApiResponse> => api(d.baseUrl, method, path, { token: TOKEN, ...opts });
  const sandbox = async (id: string): Promise<SandboxJson> =>
    (await call('GET', `/v1/sandboxes/${id}`)).json as SandboxJson;
  const spawn = async (body: Record<string, unknown>): Promise<SandboxJson[]> => {
    const res = await call('POST', '/v1/sandboxes', { json: { snapshot_tag: tag, ...body } });
    assert.equal(res.status, 201, res.text);
    const list = (res.json as { sandboxes: SandboxJson[] }).sandboxes;
    for (const s of list) assert.equal(s.state, 'running', JSON.stringify(s));
    return list;
  };
  const sh = async (id: string, cmd: string): Promise<string> => {
    const res = await call('POST', `/v1/sandboxes/${id}/exec`, { json: { cmd } });
    assert.equal(res.status, 200, res.text);
    const r = res.json as { exit_code: number; stdout: string; stderr: string };
    assert.equal(r.exit_code, 0, `${cmd}: ${r.stderr}`);
    return r.stdout.trim();
  };
  /** GET a test server's URL from inside sandbox `id`: the body, or undefined if it got nothing. */
  const fetchFrom = async (id: string, url: string, timeoutSecs: number): Promise<string | undefined> => {
    const res = await call('POST', `/v1/sandboxes/${id}/exec`, {
      json: { args: fetchArgv(url, timeoutSecs), timeout_secs: timeoutSecs + 60 },
    });
    assert.equal(res.status, 200, res.text);
    const r = res.json as { exit_code: number; stdout: string };
    return r.exit_code === 0 ? r.stdout.trim() : undefined;
  };
  const waitFor = async <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(200);
    }
  };
  const auditLines = async (): Promise<Record<string, unknown>[]> =>
    (await readFile(join(root, 'audit.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  before(async () => {
    net = await startTestNet();
    ({ root, dataDir } = await controllerDataDir(true));
    const tokenFile = join(root, 'token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    args = daemonArgs(dataDir, root, ['--token-file', tokenFile]);
    d = await startDaemon(args);
    const res = await call('POST', '/v1/snapshots', {
      // The `node` image: the suite evaluates JS, which the lean default image does not carry.
      json: { tag, image: 'node', mem_mib: 512, warmup: ['echo warm > /root/warm.txt'], boot_wait_secs: 60 },
    });
    assert.equal(res.status, 202, res.text);
    assert.equal((res.json as { status: string }).status, 'writing');
    await waitFor(
      'the snapshot build',
      async () => {
        const s = (await call('GET', `/v1/snapshots/${tag}`)).json as { status: string; error: string | null };
        if (s.status === 'failed') throw new Error(`snapshot build failed: ${String(s.error)}`);
        return s.status === 'ready' ? s : undefined;
      },
      300_000,
    );
  });

  after(async () => {
    if (d.proc.exitCode === null) {
      const list = ((await call('GET', '/v1/sandboxes')).json as { sandboxes: SandboxJson[] }).sandboxes;
      for (const s of list) await call('DELETE', `/v1/sandboxes/${s.id}`);
      await call('DELETE', `/v1/snapshots/${tag}?cascade=true`);
      assert.equal(await d.stop(), 0);
    }
    await net?.stop();
    // The daemon keeps the shared bridge and host table up (host infrastructure, like docker0);
    // `forkd netns cleanup` removes them once no sandbox namespace is left.
    const cleanup = await runCli(['netns', 'cleanup', '--json']);
    assert.equal(cleanup.code, 0, cleanup.stderr);
    assert.deepEqual(await findLeaks(dataDir), []);
    assert.deepEqual(await ourQemuProcesses(root), []);
    await rm(root, { recursive: true, force: true });
  });

  test('the snapshot is listed with its facts; a second build of the tag is refused', async () => {
    const list = (await call('GET', '/v1/snapshots')).json as {
      snapshots: { tag: string; status: string; mem_mib: number }[];
    };
    const s = list.snapshots.find((x) => x.tag === tag);
    assert.equal(s?.status, 'ready');
    assert.equal(s?.mem_mib, 512);
    const again = await call('POST', '/v1/snapshots', { json: { tag } });
    assert.equal(again.status, 409);
    assert.equal(errorCode(again), 'already_exists');
  });

  test('spawn 5, exec in each, stream, eval, files round trip, delete: nothing left', async () => {
    const kids = await spawn({ n: 5, memory_limit_mib: 256, per_child_netns: true, metadata: { suite: 'it' } });
    assert.equal(kids.length, 5);
    for (const k of kids) {
      assert.deepEqual(k.warnings, [], 'limits and namespaces are enforced, not just recorded');
      assert.equal(k.netns, netnsName(k.id));
      assert.ok(await exists(`/run/netns/${netnsName(k.id)}`), 'its own network namespace');
      assert.ok((await cgroupMemoryLimit(k.id)) === 256 * 1024 * 1024, 'its memory cgroup is capped at 256 MiB');
      assert.deepEqual(
        [k.memory_limit_mib, k.cpu_limit, k.pids_limit, k.egress],
        [256, null, null, 'deny'],
        'no egress given: the daemon default, deny',
      );
      assert.equal(await sh(k.id, 'cat /root/warm.txt'), 'warm');
      assert.equal(await sh(k.id, 'hostname'), k.id);
      assert.ok(await exists(join(dataDir, 'run', k.id)));
    }
    const [a] = kids;
    const filtered = (await call('GET', `/v1/sandboxes?snapshot_tag=${tag}&state=running`)).json as {
      sandboxes: unknown[];
    };
    assert.equal(filtered.sandboxes.length, 5);

    // Files: a binary blob in and out, listed, removed.
    const blob = randomBytes(1024 * 1024 + 3);
    const put = await call('PUT', `/v1/sandboxes/${a!.id}/files?path=/root/blob.bin&mode=600`, { body: blob });
    assert.equal(put.status, 200, put.text);
    assert.equal((put.json as { sha256: string }).sha256, createHash('sha256').update(blob).digest('hex'));
    const got = await call('GET', `/v1/sandboxes/${a!.id}/files?path=/root/blob.bin`);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(blob), 'the bytes come back unchanged');
    const listing = (await call('GET', `/v1/sandboxes/${a!.id}/files/list?path=/root`)).json as {
      entries: { name: string; size: number }[];
    };
    assert.equal(listing.entries.find((e) => e.name === 'blob.bin')?.size, blob.length);
    // stat, mkdir (with and without parents), rename over an existing file.
    const st = await call('GET', `/v1/sandboxes/${a!.id}/files/stat?path=/root/blob.bin`);
    assert.equal(st.status, 200, st.text);
    assert.deepEqual(pick(st.json, ['path', 'name', 'type', 'size']), {
      path: '/root/blob.bin',
      name: 'blob.bin',
      type: 'file',
      size: blob.length,
    });
    assert.equal((st.json as { mode: number }).mode & 0o777, 0o600);
    const dirs = '/root/d1/d2';
    const noParent = await call('POST', `/v1/sandboxes/${a!.id}/files/mkdir`, { json: { path: dirs } });
    assert.equal(noParent.status, 404, noParent.text);
    for (const created of [true, false]) {
      const made = await call('POST', `/v1/sandboxes/${a!.id}/files/mkdir`, { json: { path: dirs, parents: true } });
      assert.equal(made.status, 200, made.text);
      assert.deepEqual(made.json, { path: dirs, created });
    }
    const again = await call('POST', `/v1/sandboxes/${a!.id}/files/mkdir`, { json: { path: dirs } });
    assert.equal(errorCode(again), 'already_exists');
    assert.equal((await call('PUT', `/v1/sandboxes/${a!.id}/files?path=${dirs}/old`, { body: 'old' })).status, 200);
    const moved = await call('POST', `/v1/sandboxes/${a!.id}/files/rename`, {
      json: { from: '/root/blob.bin', to: `${dirs}/old` },
    });
    assert.equal(moved.status, 200, moved.text);
    assert.deepEqual(pick(moved.json, ['path', 'name', 'size']), {
      path: `${dirs}/old`,
      name: 'old',
      size: blob.length,
    });
    assert.ok((await call('GET', `/v1/sandboxes/${a!.id}/files?path=${dirs}/old`)).body.equals(blob), 'renamed over');
    const missing = await call('POST', `/v1/sandboxes/${a!.id}/files/rename`, {
      json: { from: '/root/blob.bin', to: '/root/x' },
    });
    assert.equal(errorCode(missing), 'not_found');
    assert.equal((await call('DELETE', `/v1/sandboxes/${a!.id}/files?path=/root/d1&recursive=true`)).status, 204);
    const gone = await call('GET', `/v1/sandboxes/${a!.id}/files/stat?path=/root/d1`);
    assert.equal(gone.status, 404);
    assert.equal(errorCode(gone), 'not_found');
    // Egress denied by default: the test server does not answer.
    assert.equal(await fetchFrom(a!.id, serverUrl(0), 5), undefined, 'default egress deny');
    // Siblings never see each other's files.
    await sh(a!.id, 'echo mine > /root/only-a');
    assert.equal(await sh(kids[1]!.id, 'test -e /root/only-a; echo $?'), '1');

    // Streaming exec: output chunks, then the exit line.
    const stream = await call('POST', `/v1/sandboxes/${a!.id}/exec/stream`, {
      json: { cmd: 'for i in 1 2 3; do echo line$i; done; echo oops >&2; exit 3' },
    });
    assert.equal(stream.status, 200);
    const lines = stream.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const out = lines
      .filter((l) => l.type === 'stdout')
      .map((l) => l.data as string)
      .join('');
    assert.equal(out, 'line1\nline2\nline3\n');
    assert.ok(lines.some((l) => l.type === 'stderr' && String(l.data).includes('oops')));
    assert.deepEqual({ type: lines.at(-1)!.type, exit_code: lines.at(-1)!.exit_code }, { type: 'exit', exit_code: 3 });
    // argv exec with env, cwd and stdin.
    const argv = await call('POST', `/v1/sandboxes/${a!.id}/exec`, {
      json: { args: ['sh', '-c', 'echo "$FOO $(pwd) $(cat)"'], env: { FOO: 'bar' }, cwd: '/tmp', stdin: 'in' },
    });
    assert.equal((argv.json as { stdout: string }).stdout, 'bar /tmp in\n');
    const ev = await call('POST', `/v1/sandboxes/${a!.id}/eval`, { json: { code: '[1, 2].map((x) => x * 21)' } });
    assert.deepEqual((ev.json as { value: unknown }).value, [21, 42]);
    const ping = await call('POST', `/v1/sandboxes/${a!.id}/ping`);
    assert.equal((ping.json as { ok: boolean }).ok, true);

    // The snapshot cannot go while they use it.
    const busy = await call('DELETE', `/v1/snapshots/${tag}`);
    assert.equal(busy.status, 409);
    assert.match((busy.json as { error: string }).error, /in use by 5 sandbox/);
    assert.match((await call('GET', '/metrics')).text, /^forkd_sandboxes_active 5$/m);

    for (const k of kids) {
      assert.equal((await call('DELETE', `/v1/sandboxes/${k.id}`)).status, 204);
      assert.equal((await call('GET', `/v1/sandboxes/${k.id}`)).status, 404);
      assert.equal(await alive(k.pid!), false, `qemu ${k.pid} is gone`);
      assert.equal(await exists(join(dataDir, 'run', k.id)), false, `run dir of ${k.id} is gone`);
    }
    assert.equal((await call('POST', `/v1/sandboxes/${a!.id}/exec`, { json: { cmd: 'true' } })).status, 404);
    assert.deepEqual(await ourQemuProcesses(root), []);
    assert.match((await call('GET', '/metrics')).text, /^forkd_sandboxes_active 0$/m);
  });

  test('a restarted daemon re-adopts 3 live sandboxes; kill -9 of QEMU marks them failed and cleans up', async () => {
    const kids = await spawn({ n: 3 });
    for (const k of kids) await sh(k.id, `echo before-restart > /root/mark`);
    // A lifetime set through the API is kept across the restart.
    const ttl = await call('POST', `/v1/sandboxes/${kids[0]!.id}/ttl`, { json: { ttl_secs: 3600 } });
    assert.equal(ttl.status, 200, ttl.text);
    const expiresAt = (ttl.json as { expires_at: string }).expires_at;
    assert.equal(await d.stop('SIGTERM'), 0, 'clean shutdown');
    for (const k of kids) assert.equal(await alive(k.pid!), true, `sandbox ${k.id} keeps running without the daemon`);

    d = await startDaemon(args);
    const listed = ((await call('GET', '/v1/sandboxes?state=running')).json as { sandboxes: SandboxJson[] }).sandboxes;
    assert.deepEqual(listed.map((s) => s.id).sort(), kids.map((k) => k.id).sort());
    assert.equal(((await sandbox(kids[0]!.id)) as SandboxJson & { expires_at: string }).expires_at, expiresAt);
    for (const k of kids) {
      assert.equal((await sandbox(k.id)).pid, k.pid);
      assert.equal(await sh(k.id, 'cat /root/mark'), 'before-restart', 'the same guest, reconnected');
      const put = await call('PUT', `/v1/sandboxes/${k.id}/files?path=/root/after`, { body: 'after' });
      assert.equal(put.status, 200);
    }
    assert.match((await call('GET', '/metrics')).text, /^forkd_sandboxes_active 3$/m);

    // kill -9 of an adopted QEMU (not our child: seen through /proc and the QMP socket)...
    const [victim, ...rest] = kids;
    process.kill(victim!.pid!, 'SIGKILL');
    const failed = await waitFor('the adopted sandbox to fail', async () => {
      const s = await sandbox(victim!.id);
      return s.state === 'failed' ? s : undefined;
    });
    assert.match(String(failed.reason), /qemu exited/);
    await waitFor('its run dir to go', async () =>
      (await exists(join(dataDir, 'run', victim!.id))) ? undefined : true,
    );
    const refused = await call('POST', `/v1/sandboxes/${victim!.id}/exec`, { json: { cmd: 'true' } });
    assert.equal(refused.status, 409);
    assert.equal(errorCode(refused), 'invalid_state');

    // ...and of a fresh one (our child: seen through its exit).
    const [fresh] = await spawn({ n: 1 });
    process.kill(fresh!.pid!, 'SIGKILL');
    const f2 = await waitFor('the fresh sandbox to fail', async () => {
      const s = await sandbox(fresh!.id);
      return s.state === 'failed' ? s : undefined;
    });
    assert.match(String(f2.reason), /signal SIGKILL/);
    await waitFor('its run dir to go', async () =>
      (await exists(join(dataDir, 'run', fresh!.id))) ? undefined : true,
    );

    assert.match((await call('GET', '/metrics')).text, /^forkd_sandboxes\{state="failed"\} 2$/m);
    for (const s of [victim!, fresh!, ...rest])
      assert.equal((await call('DELETE', `/v1/sandboxes/${s.id}`)).status, 204);
    for (const s of rest) assert.equal(await alive(s.pid!), false);
    assert.deepEqual(await readdir(join(dataDir, 'run')), []);
  });

  test('a crashed daemon (SIGKILL) is re-adopted from; one daemon per data dir; --kill-on-exit stops sandboxes', async () => {
    const [k] = await spawn({ n: 1 });
    const second = await runDaemonToExit(args);
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /another forkd-controller uses the data dir/);
    assert.equal(await d.stop('SIGKILL'), null);
    assert.equal(await alive(k!.pid!), true);

    d = await startDaemon([...args, '--kill-on-exit']);
    assert.equal((await sandbox(k!.id)).state, 'running');
    assert.equal(await sh(k!.id, 'hostname'), k!.id);
    assert.equal(await d.stop('SIGTERM'), 0);
    assert.equal(await alive(k!.pid!), false, '--kill-on-exit stopped it');
    assert.equal(await exists(join(dataDir, 'run', k!.id)), false);

    d = await startDaemon(args);
    assert.equal((await call('GET', `/v1/sandboxes/${k!.id}`)).status, 404);
  });

  test('a daemon killed mid-create and mid-build: the next one leaves no orphan', async (t) => {
    const buildTag = `${tag}-crash`;
    assert.equal((await call('POST', '/v1/snapshots', { json: { tag: buildTag } })).status, 202);
    // The spawn request is cut off by the kill; whichever children got how far, the next
    // daemon must account for each one: running (re-adopted) or failed, nothing in between.
    const spawning = call('POST', '/v1/sandboxes', {
      json: { snapshot_tag: tag, n: 3, metadata: { crash: '1' } },
    }).catch(() => undefined);
    await sleep(300);
    assert.equal(await d.stop('SIGKILL'), null);
    await spawning;
    d = await startDaemon(args);
    const build = (await call('GET', `/v1/snapshots/${buildTag}`)).json as { status: string; error: string };
    assert.equal(build.status, 'failed');
    assert.match(build.error, /daemon stopped while the snapshot was being built/);
    assert.deepEqual(
      (await readdir(join(dataDir, 'snapshots'))).filter((n) => n.startsWith('.')),
      [],
      'no staging dir left',
    );
    const boxes = (
      (await call('GET', '/v1/sandboxes')).json as { sandboxes: (SandboxJson & { metadata: Record<string, string> })[] }
    ).sandboxes.filter((s) => s.metadata.crash === '1');
    t.diagnostic(
      `after the crash: ${boxes.map((s) => `${s.state}${s.reason ? ` (${s.reason})` : ''}`).join(', ') || 'no row yet'}`,
    );
    for (const s of boxes) {
      assert.ok(s.state === 'running' || s.state === 'failed', `${s.id} is ${s.state}`);
      if (s.state === 'running') assert.equal(await sh(s.id, 'hostname'), s.id);
      assert.equal((await call('DELETE', `/v1/sandboxes/${s.id}`)).status, 204);
    }
    assert.deepEqual(await readdir(join(dataDir, 'run')), []);
    assert.deepEqual(await ourQemuProcesses(root), [], 'neither the parent of the build nor any child survives');
    assert.equal((await call('DELETE', `/v1/snapshots/${buildTag}`)).status, 200);
  });

  test('TTL expiry stops the sandbox; POST .../ttl moves the deadline', async () => {
    const [k, later] = await spawn({ n: 2, ttl_secs: 3600 });
    const before = Date.now();
    const set = await call('POST', `/v1/sandboxes/${k!.id}/ttl`, { json: { ttl_secs: 2 } });
    assert.equal(set.status, 200, set.text);
    const expiresAt = Date.parse((set.json as { expires_at: string }).expires_at);
    assert.ok(expiresAt >= before + 2000 && expiresAt <= Date.now() + 2000, `expires_at ${expiresAt} is now + 2 s`);
    // Out of range or not an integer: 400 before anything changes.
    for (const ttl_secs of [0, 604_801, 1.5, '10']) {
      const bad = await call('POST', `/v1/sandboxes/${later!.id}/ttl`, { json: { ttl_secs } });
      assert.equal(errorCode(bad), 'invalid_argument', `ttl_secs ${String(ttl_secs)}`);
    }
    assert.equal(errorCode(await call('POST', `/v1/sandboxes/${later!.id}/ttl`, { json: {} })), 'invalid_argument');
    // Extended: the other one outlives the first's expiry.
    assert.equal((await call('POST', `/v1/sandboxes/${later!.id}/ttl`, { json: { ttl_secs: 600 } })).status, 200);
    const s = await waitFor('expiry', async () => {
      const x = await sandbox(k!.id);
      return x.state === 'stopped' ? x : undefined;
    });
    assert.match(String(s.reason), /expired/);
    assert.ok(Date.now() - before < 60_000, 'it went at the new deadline, not the hour it was spawned with');
    assert.equal(await alive(k!.pid!), false);
    assert.equal(await exists(join(dataDir, 'run', k!.id)), false);
    const stopped = await call('POST', `/v1/sandboxes/${k!.id}/ttl`, { json: { ttl_secs: 60 } });
    assert.equal(stopped.status, 409);
    assert.equal(errorCode(stopped), 'invalid_state');
    assert.equal((await sandbox(later!.id)).state, 'running');
    assert.equal((await call('DELETE', `/v1/sandboxes/${k!.id}`)).status, 204);
    assert.equal((await call('DELETE', `/v1/sandboxes/${later!.id}`)).status, 204);
  });

  test('lineage: dependents block a delete; cascade deletes them, force orphans them', async () => {
    // Chains come from BRANCH (a later issue); here they are made by hand: copies of the
    // snapshot whose snapshot.json names a parent.
    const copy = async (name: string, parent: string | null): Promise<void> => {
      const src = join(dataDir, 'snapshots', tag);
      const dst = join(dataDir, 'snapshots', name);
      await mkdir(dst);
      for (const f of await readdir(src)) if (f !== 'snapshot.json') await link(join(src, f), join(dst, f));
      const meta = JSON.parse(await readFile(join(src, 'snapshot.json'), 'utf8')) as Record<string, unknown>;
      await writeFile(join(dst, 'snapshot.json'), JSON.stringify({ ...meta, tag: name, parentTag: parent }));
    };
    const [l0, l1, l2, l1b] = ['l0', 'l1', 'l2', 'l1b'].map((s) => `${tag}-${s}`) as [string, string, string, string];
    await copy(l0, null);
    await copy(l1, l0);
    await copy(l2, l1);
    const info = (await call('GET', `/v1/snapshots/${l2}`)).json as { ancestors: string[]; parent_tag: string };
    assert.deepEqual(info.ancestors, [l0, l1]);
    assert.deepEqual(((await call('GET', `/v1/snapshots/${l0}`)).json as { dependents: string[] }).dependents, [l1]);
    const blocked = await call('DELETE', `/v1/snapshots/${l0}`);
    assert.equal(blocked.status, 409);
    assert.match((blocked.json as { error: string }).error, /cascade=true.*force=true/);
    const cascade = await call('DELETE', `/v1/snapshots/${l1}?cascade=true`);
    assert.deepEqual((cascade.json as { deleted: string[] }).deleted, [l2, l1]);
    assert.equal((await call('GET', `/v1/snapshots/${l2}`)).status, 404);
    await copy(l1b, l0);
    const forced = await call('DELETE', `/v1/snapshots/${l0}?force=true`);
    assert.deepEqual((forced.json as { deleted: string[] }).deleted, [l0]);
    const orphan = (await call('GET', `/v1/snapshots/${l1b}`)).json as { parent_tag: string; ancestors: string[] };
    assert.equal(orphan.parent_tag, l0, 'the orphan still names its (gone) parent');
    assert.equal((await call('DELETE', `/v1/snapshots/${l1b}`)).status, 200);
  });

  test('the audit log has a line for each request and state change; metrics match', async () => {
    const lines = await auditLines();
    const events = lines.filter((l) => l.type === 'event');
    const count = (e: string): number => events.filter((l) => l.event === e).length;
    assert.equal(count('snapshot.created'), 1);
    assert.ok(count('sandbox.created') >= 10, `sandbox.created: ${count('sandbox.created')}`);
    // The crash test makes the exact numbers below depend on how far its children got.
    assert.ok(count('sandbox.killed') >= 8);
    assert.ok(count('sandbox.adopted') >= 4);
    assert.ok(count('sandbox.failed') >= 2);
    assert.ok(count('snapshot.failed') >= 1, 'the build cut off by the crash');
    assert.equal(count('sandbox.expired'), 1);
    assert.ok(count('snapshot.deleted') >= 4);
    for (const e of events) {
      assert.match(String(e.ts), /Z$/);
      if (String(e.event).startsWith('sandbox.')) assert.match(String(e.sandbox_id), /^sb-[a-z2-7]{16}$/);
    }
    const req = (method: string, status: number, path: RegExp): boolean =>
      lines.some(
        (l) => l.type === 'request' && l.method === method && l.status === status && path.test(String(l.path)),
      );
    assert.ok(req('POST', 201, /^\/v1\/sandboxes$/));
    assert.ok(req('POST', 202, /^\/v1\/snapshots$/));
    assert.ok(req('DELETE', 204, /^\/v1\/sandboxes\/sb-/));
    assert.ok(req('DELETE', 409, /^\/v1\/snapshots\//));
    assert.ok(req('PUT', 200, /\/files$/), 'path without its query string');
    assert.ok(!(await readFile(join(root, 'audit.log'), 'utf8')).includes(TOKEN));

    const text = (await call('GET', '/metrics')).text;
    assert.match(text, /^forkd_snapshots\{status="ready"\} 1$/m);
    assert.match(text, /^forkd_sandboxes_active 0$/m);
    assert.match(text, /^forkd_spawn_latency_seconds_count [1-9]\d*$/m);
    assert.match(text, /^forkd_restore_latency_seconds_count [1-9]\d*$/m);
    assert.match(text, /^forkd_http_requests_total\{route="\/v1\/sandboxes",method="POST",status="201"\} [1-9]\d*$/m);
  });

  test('memory_limit_mib is enforced: a sandbox that outgrows it is failed with reason oom, in the API and the audit log', async () => {
    const [hog] = await spawn({ n: 1, memory_limit_mib: 256 });
    assert.ok(hog);
    // The guest has ~300 MiB free of 512; every page node fills becomes a private copy in QEMU.
    const fill = `node -e "const a=[];for(let i=0;i<40;i++){a.push(Buffer.alloc(8<<20,i+1))}console.log('filled')"`;
    const res = await call('POST', `/v1/sandboxes/${hog.id}/exec`, { json: { cmd: fill, timeout_secs: 180 } });
    assert.notEqual(res.status, 200, 'the allocation must not complete under a 256 MiB limit');
    const failed = await waitFor('the oom verdict', async () => {
      const s = await sandbox(hog.id);
      return s.state === 'failed' ? s : undefined;
    });
    assert.equal(failed.reason, 'oom');
    const line = await waitFor('the audit line of the failure', async () =>
      (await auditLines()).find((l) => l.type === 'event' && l.event === 'sandbox.failed' && l.sandbox_id === hog.id),
    );
    assert.equal(line.reason, 'oom', JSON.stringify(line));
    assert.equal((await call('DELETE', `/v1/sandboxes/${hog.id}`)).status, 204);
  });

  test('cpu_limit and pids_limit reach the sandbox cgroup and the API answer; bad ones never make a row', async () => {
    // Against a real snapshot: still refused before any row or cgroup exists.
    const rows = (): Promise<number> =>
      call('GET', '/v1/sandboxes').then((r) => (r.json as { sandboxes: unknown[] }).sandboxes.length);
    const before = await rows();
    for (const json of [
      { snapshot_tag: tag, per_child_netns: true, egress: { allow: ['10.0.0.1/8'] } },
      { snapshot_tag: tag, egress: 'allow' },
      { snapshot_tag: tag, pids_limit: 8 },
    ]) {
      const res = await call('POST', '/v1/sandboxes', { json });
      assert.equal(res.status, 400, res.text);
      assert.equal(errorCode(res), 'invalid_argument');
    }
    assert.equal(await rows(), before, 'no row');

    const [k] = await spawn({ n: 1, cpu_limit: 0.5, pids_limit: 64 });
    assert.ok(k);
    for (const s of [k, await sandbox(k.id)]) {
      assert.deepEqual(
        [s.cpu_limit, s.pids_limit, s.memory_limit_mib, s.per_child_netns, s.netns, s.egress],
        [0.5, 64, null, false, null, null],
      );
    }
    const cgroup = await SandboxCgroup.forId(k.id);
    const cpu = cgroup.dirs.find((x) => x.controllers.includes('cpu'));
    const pids = cgroup.dirOf('pids');
    assert.ok(cpu && pids, `cpu and pids controllers: ${JSON.stringify(cgroup.dirs)}`);
    const read = async (dir: string, file: string): Promise<string> => (await readFile(join(dir, file), 'utf8')).trim();
    if (cpu.version === 'v1') {
      assert.equal(await read(cpu.path, 'cpu.cfs_quota_us'), '50000');
      assert.equal(await read(cpu.path, 'cpu.cfs_period_us'), '100000');
    } else {
      assert.equal(await read(cpu.path, 'cpu.max'), '50000 100000');
    }
    assert.equal(await read(pids, 'pids.max'), '64');
    for (const dir of cgroup.dirs)
      assert.match(await read(dir.path, 'cgroup.procs'), new RegExp(`^${k.pid}$`, 'm'), `QEMU is in ${dir.path}`);
    // (test/integration/isolation.test.ts shows pids.max stops a fork past it.)
    assert.equal(await sh(k.id, 'echo alive'), 'alive', 'runs at half a CPU');
    assert.equal((await call('DELETE', `/v1/sandboxes/${k.id}`)).status, 204);
    for (const dir of cgroup.dirs) assert.equal(await exists(dir.path), false, `${dir.path} removed`);
  });

  test('egress through the API: an allow-list reaches only its CIDR; --default-egress allow opens a spawn without one', async () => {
    const allowList = { allow: [SERVERS[0].cidr] };
    const [k] = await spawn({ n: 1, per_child_netns: true, egress: allowList });
    assert.ok(k);
    assert.deepEqual(k.egress, allowList);
    assert.deepEqual((await sandbox(k.id)).egress, allowList);
    assert.equal(await fetchFrom(k.id, serverUrl(0), 30), 'srv1', 'the listed CIDR answers');
    assert.equal(await fetchFrom(k.id, serverUrl(1), 5), undefined, 'a CIDR not on the list does not');
    assert.equal((await call('DELETE', `/v1/sandboxes/${k.id}`)).status, 204);

    // A daemon whose default is allow: a networked spawn that names no policy gets it.
    assert.equal(await d.stop(), 0);
    d = await startDaemon([...args, '--default-egress', 'allow']);
    try {
      const [open] = await spawn({ n: 1, per_child_netns: true });
      assert.ok(open);
      assert.equal(open.egress, 'allow');
      assert.equal(await fetchFrom(open.id, serverUrl(0), 30), 'srv1');
      assert.equal(await fetchFrom(open.id, serverUrl(1), 30), 'srv2');
      assert.equal((await call('DELETE', `/v1/sandboxes/${open.id}`)).status, 204);
    } finally {
      assert.equal(await d.stop(), 0);
      d = await startDaemon(args);
    }
    assert.equal(await net!.escaped(), 0, 'nothing a sandbox sent went anywhere but the test servers');
  });
});
