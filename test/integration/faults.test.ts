// Faults at the worst moment, with real processes (issue 14, point 3): the daemon killed with
// SIGKILL during a spawn, a BRANCH, a snapshot build and a pack import (PUT .../pack), then
// restarted on the same data dir; a QEMU killed during an exec; a QEMU stopped (SIGSTOP) while
// the daemon serves other sandboxes. After every crash: forkd.db passes `PRAGMA
// integrity_check` (read with better-sqlite3 while no daemon runs), every sandbox is running
// (re-adopted, and answers) or failed (no QEMU, no run dir), no snapshot is left `writing`,
// every `ready` one is complete, and no staging or temp file of the dead daemon is left.
// One daemon and data dir for the whole file; every response is checked against the OpenAPI
// document (api()).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { chmod, copyFile, link, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
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
import { ensureImage, TEST_DATA_DIR, uniqueTag } from '../helpers/env.js';
import { diskFiller } from '../helpers/disk-fill.js';
import { exists } from '../../src/lib/fsutil.js';
import { processAlive as alive } from '../../src/host/proc-stat.js';
import { commandLines } from '../../src/core/controller/proc.js';

const TOKEN = randomBytes(24).toString('hex');
const pexec = promisify(execFile);

interface SandboxJson {
  id: string;
  state: string;
  pid: number | null;
  reason: string | null;
  metadata: Record<string, string>;
}
interface SnapshotJson {
  tag: string;
  status: string;
  error: string | null;
}

/**
 * findLeaks(dataDir), keeping of the host-wide entries (namespaces, cgroups, bridge claims,
 * links, the host table) only those naming a sandbox this suite's daemons made (their ids in
 * its audit log): the machine is shared with other sessions' suites, whose live sandboxes are
 * not ours to count. This suite spawns no sandbox with a network, so an unnamed bridge claim
 * or table cannot be its own. Everything under the data dir (QEMU, run dirs, staging) counts.
 */
async function ourLeaks(dataDir: string, auditLog: string): Promise<string[]> {
  const ids = new Set(
    ((await readFile(auditLog, 'utf8').catch(() => '')).match(/sb-[a-z2-7]{16}/g) ?? []).map((i) => i.slice(3)),
  );
  return (await findLeaks(dataDir)).filter(
    (l) =>
      !/^(netns|cgroup|bridge address claim|link|nftables)/.test(l) ||
      [...ids].some((suffix) => l.includes(suffix.slice(4))),
  );
}

describe('faults: kill -9 of the daemon and of QEMU, SIGSTOP of QEMU', () => {
  let root: string;
  let dataDir: string;
  let args: string[];
  let d: DaemonProcess;
  const tag = uniqueTag('it-flt');
  const call = (
    method: string,
    path: string,
    opts: { json?: unknown; body?: Buffer | string } = {},
  ): Promise<ApiResponse> => api(d.baseUrl, method, path, { token: TOKEN, ...opts });
  const sandbox = async (id: string): Promise<SandboxJson> =>
    (await call('GET', `/v1/sandboxes/${id}`)).json as SandboxJson;
  const spawn = async (n: number, metadata: Record<string, string> = {}): Promise<SandboxJson[]> => {
    const res = await call('POST', '/v1/sandboxes', { json: { snapshot_tag: tag, n, metadata } });
    assert.equal(res.status, 201, res.text);
    return (res.json as { sandboxes: SandboxJson[] }).sandboxes;
  };
  const sh = async (id: string, cmd: string): Promise<string> => {
    const res = await call('POST', `/v1/sandboxes/${id}/exec`, { json: { cmd } });
    assert.equal(res.status, 200, res.text);
    const r = res.json as { exit_code: number; stdout: string; stderr: string };
    assert.equal(r.exit_code, 0, `${cmd}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const waitFor = async <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(25);
    }
  };
  const snapshotsDir = (): string => join(dataDir, 'snapshots');
  /** Our QEMU processes with their whole command lines (ourQemuProcesses cuts them short). */
  const qemus = async (): Promise<string[]> =>
    [...(await commandLines(`${dataDir}/`)).values()].filter((c) => c.includes('qemu-system'));
  const dotEntries = async (): Promise<string[]> =>
    (await readdir(snapshotsDir()).catch(() => [] as string[])).filter((n) => n.startsWith('.'));
  const settled = async (t: string): Promise<SnapshotJson | undefined> => {
    const s = (await call('GET', `/v1/snapshots/${t}`)).json as SnapshotJson;
    return s.status === 'writing' ? undefined : s;
  };

  /** SIGKILL the daemon; check the database it left; start the next one; check what it made of it. */
  async function crashAndRestart(what: string): Promise<{ boxes: SandboxJson[]; snapshots: SnapshotJson[] }> {
    assert.equal(await d.stop('SIGKILL'), null, `${what}: the daemon died of SIGKILL`);
    // No daemon runs: the file as the crash left it (WAL and all), opened the way SQLite recovers it.
    const db = new Database(join(dataDir, 'forkd.db'), { fileMustExist: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok', `${what}: forkd.db integrity_check`);
    } finally {
      db.close();
    }
    d = await startDaemon(args);
    const boxes = ((await call('GET', '/v1/sandboxes')).json as { sandboxes: SandboxJson[] }).sandboxes;
    for (const s of boxes) {
      assert.ok(
        s.state === 'running' || s.state === 'failed' || s.state === 'stopped',
        `${what}: ${s.id} is ${s.state}`,
      );
      if (s.state === 'running') assert.equal(await sh(s.id, 'hostname'), s.id, `${what}: ${s.id} re-adopted`);
      else {
        assert.equal(await exists(join(dataDir, 'run', s.id)), false, `${what}: run dir of ${s.id} gone`);
        if (s.pid !== null) assert.equal(await alive(s.pid), false, `${what}: QEMU of ${s.id} gone`);
      }
    }
    const snapshots = ((await call('GET', '/v1/snapshots')).json as { snapshots: SnapshotJson[] }).snapshots;
    for (const s of snapshots) {
      assert.notEqual(s.status, 'writing', `${what}: snapshot ${s.tag} left writing`);
      if (s.status === 'ready')
        assert.ok(await exists(join(snapshotsDir(), s.tag, 'snapshot.json')), `${what}: ${s.tag} complete`);
      else assert.equal(await exists(join(snapshotsDir(), s.tag)), false, `${what}: failed ${s.tag} has no dir`);
    }
    assert.deepEqual(await dotEntries(), [], `${what}: no staging or temp entry left in snapshots/`);
    // Run dirs: only those of running sandboxes.
    const running = new Set(boxes.filter((s) => s.state === 'running').map((s) => s.id));
    for (const r of await readdir(join(dataDir, 'run')).catch(() => [] as string[]))
      assert.ok(running.has(r), `${what}: run dir ${r} of no running sandbox`);
    // QEMU processes: only those of running sandboxes.
    for (const q of await qemus())
      assert.ok(
        [...running].some((id) => q.includes(`/run/${id}/`)),
        `${what}: stray QEMU: ${q.slice(0, 300)}`,
      );
    return { boxes, snapshots };
  }

  async function deleteAll(filter: (s: SandboxJson) => boolean): Promise<void> {
    const list = ((await call('GET', '/v1/sandboxes')).json as { sandboxes: SandboxJson[] }).sandboxes;
    for (const s of list.filter(filter)) assert.equal((await call('DELETE', `/v1/sandboxes/${s.id}`)).status, 204);
  }

  before(async () => {
    ({ root, dataDir } = await controllerDataDir(true));
    const tokenFile = join(root, 'token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    args = daemonArgs(dataDir, root, ['--token-file', tokenFile]);
    d = await startDaemon(args);
    const res = await call('POST', '/v1/snapshots', { json: { tag, mem_mib: 256, boot_wait_secs: 60 } });
    assert.equal(res.status, 202, res.text);
    const s = await waitFor('the snapshot build', () => settled(tag), 300_000);
    assert.equal(s.status, 'ready', String(s.error));
  });

  after(async () => {
    if (d.proc.exitCode === null) {
      await deleteAll(() => true);
      const snaps = ((await call('GET', '/v1/snapshots')).json as { snapshots: SnapshotJson[] }).snapshots;
      for (const s of snaps.filter((x) => x.tag !== tag)) await call('DELETE', `/v1/snapshots/${s.tag}?force=true`);
      await call('DELETE', `/v1/snapshots/${tag}?cascade=true`);
      assert.equal(await d.stop(), 0);
    }
    assert.deepEqual(await ourLeaks(dataDir, join(root, 'audit.log')), []);
    assert.deepEqual(await ourQemuProcesses(root), []);
    await rm(root, { recursive: true, force: true });
  });

  test('kill -9 of the daemon during a spawn: each child is re-adopted or failed, nothing half-made', async (t) => {
    const spawning = call('POST', '/v1/sandboxes', {
      json: { snapshot_tag: tag, n: 3, metadata: { fault: 'spawn' } },
    }).catch(() => undefined);
    // The worst moment: QEMU runs for at least one child, the request has not answered.
    await waitFor('a child QEMU to start', async () =>
      (await qemus()).some((q) => q.includes('/run/sb-')) ? true : undefined,
    );
    const { boxes } = await crashAndRestart('spawn');
    await spawning;
    const mine = boxes.filter((s) => s.metadata.fault === 'spawn');
    t.diagnostic(`after the crash: ${mine.map((s) => s.state).join(', ') || 'no row'}`);
    await deleteAll((s) => s.metadata.fault === 'spawn');
    assert.deepEqual(await readdir(join(dataDir, 'run')), []);
    assert.deepEqual(await ourQemuProcesses(root), []);
  });

  test('kill -9 of the daemon during a snapshot build: the build is failed, its QEMU and staging dir gone', async () => {
    const build = `${tag}-b`;
    assert.equal((await call('POST', '/v1/snapshots', { json: { tag: build, mem_mib: 256 } })).status, 202);
    // Killed once the parent QEMU runs from the staging dir (booting or saving).
    await waitFor('the parent QEMU', async () =>
      [...(await commandLines(`/.staging-${build}-`)).keys()].length > 0 ? true : undefined,
    );
    await sleep(1000);
    await crashAndRestart('snapshot build');
    const s = (await call('GET', `/v1/snapshots/${build}`)).json as SnapshotJson;
    assert.equal(s.status, 'failed');
    assert.match(String(s.error), /daemon stopped while the snapshot was being built/);
    assert.deepEqual([...(await commandLines(`/.staging-${build}-`)).keys()], []);
    assert.equal((await call('DELETE', `/v1/snapshots/${build}`)).status, 200);
  });

  test('kill -9 of the daemon during a BRANCH (live copy, then materialize): the source is re-adopted', async (t) => {
    const [src] = await spawn(1, { fault: 'branch' });
    await sh(src!.id, 'echo before > /root/mark');
    // 1: while the source streams into the staging dir.
    const b1 = `${tag}-br1`;
    const branching = call('POST', `/v1/sandboxes/${src!.id}/branch`, { json: { tag: b1 } }).catch(() => undefined);
    await waitFor('the migration stream', async () => {
      for (const n of await dotEntries()) {
        if (!n.startsWith(`.staging-${b1}-`)) continue;
        const st = await stat(join(snapshotsDir(), n, 'branch.stream')).catch(() => undefined);
        if (st && st.size > 0) return true;
      }
      return undefined;
    });
    await crashAndRestart('BRANCH phase 1');
    await branching;
    assert.equal((await sandbox(src!.id)).state, 'running', 'the source survived');
    assert.equal(await sh(src!.id, 'cat /root/mark'), 'before');
    const s1 = await settled(b1);
    assert.equal(s1?.status, 'failed', 'the cut-off BRANCH is failed, not ready');
    assert.equal((await call('DELETE', `/v1/snapshots/${b1}`)).status, 200);

    // 2: right after the live phase answered (materializing in the background).
    const b2 = `${tag}-br2`;
    const res = await call('POST', `/v1/sandboxes/${src!.id}/branch`, { json: { tag: b2, wait: false } });
    assert.ok(res.status === 201 || res.status === 202, res.text);
    await crashAndRestart('BRANCH phase 2');
    const s2 = await settled(b2);
    assert.ok(s2 && (s2.status === 'failed' || s2.status === 'ready'), JSON.stringify(s2));
    t.diagnostic(`BRANCH cut off after its live phase: ${s2.status}${s2.error ? ` (${s2.error})` : ''}`);
    if (s2.status === 'ready') {
      // Published before the crash: complete, and it restores.
      const [k] = await spawnFrom(b2);
      assert.equal(await sh(k!.id, 'cat /root/mark'), 'before');
      assert.equal((await call('DELETE', `/v1/sandboxes/${k!.id}`)).status, 204);
    }
    assert.equal(await sh(src!.id, 'cat /root/mark'), 'before');
    await deleteAll((s) => s.metadata.fault === 'branch');
    assert.equal((await call('DELETE', `/v1/snapshots/${b2}`)).status, 200);
  });

  const spawnFrom = async (t: string): Promise<SandboxJson[]> => {
    const res = await call('POST', '/v1/sandboxes', { json: { snapshot_tag: t, n: 1, metadata: { fault: 'from' } } });
    assert.equal(res.status, 201, res.text);
    return (res.json as { sandboxes: SandboxJson[] }).sandboxes;
  };

  test('kill -9 of the daemon during a pack import (receiving, then unpacking): no temp file left, tag absent', async () => {
    const got = await call('GET', `/v1/snapshots/${tag}/pack`);
    assert.equal(got.status, 200);
    const pack = got.body;
    const sha = String(got.headers['x-forkd-pack-sha256']);
    const put = (target: string, bytes: Buffer): Promise<number | undefined> => {
      const url = new URL(d.baseUrl);
      return new Promise((resolve) => {
        const req = httpRequest({
          host: url.hostname,
          port: url.port,
          method: 'PUT',
          path: `/v1/snapshots/${target}/pack?sha256=${sha}`,
          headers: {
            authorization: `Bearer ${TOKEN}`,
            'content-type': 'application/zstd',
            'content-length': String(pack.length),
          },
          agent: false,
        });
        req.on('response', (r) => {
          r.resume();
          resolve(r.statusCode);
        });
        req.on('error', () => resolve(undefined));
        req.write(bytes);
      });
    };
    // 1: half the body received (the daemon is writing .recv-*).
    const p1 = `${tag}-p1`;
    const first = put(p1, pack.subarray(0, pack.length >> 1));
    await waitFor('the received part', async () =>
      (await dotEntries()).some((n) => n.startsWith('.recv-')) ? true : undefined,
    );
    await crashAndRestart('pack receive');
    assert.equal(await first, undefined, 'the request got no answer');
    assert.equal((await call('GET', `/v1/snapshots/${p1}`)).status, 404);
    // 2: the whole body received, the pack being unpacked (.unpack-*).
    const p2 = `${tag}-p2`;
    const second = put(p2, pack);
    await waitFor('the unpack', async () =>
      (await dotEntries()).some((n) => n.startsWith('.unpack-')) ? true : undefined,
    );
    await crashAndRestart('unpack');
    assert.equal(await second, undefined, 'the request got no answer');
    assert.equal((await call('GET', `/v1/snapshots/${p2}`)).status, 404);
  });

  test('a daemon killed between publishing a snapshot dir and marking its row: the next one calls it ready', async () => {
    // The window (rename, then the row update) is too short to hit with a kill: the state it
    // leaves is made by hand, a complete dir (links of the test snapshot's files) and a row
    // still `writing`, written into forkd.db while no daemon runs.
    const pub = `${tag}-pub`;
    const dir = join(snapshotsDir(), pub);
    await mkdir(dir, { mode: 0o755 });
    for (const f of await readdir(join(snapshotsDir(), tag)))
      if (f !== 'snapshot.json') await link(join(snapshotsDir(), tag, f), join(dir, f));
    const meta = JSON.parse(await readFile(join(snapshotsDir(), tag, 'snapshot.json'), 'utf8')) as object;
    await writeFile(join(dir, 'snapshot.json'), JSON.stringify({ ...meta, tag: pub }), { mode: 0o644 });
    assert.equal(await d.stop('SIGKILL'), null);
    const db = new Database(join(dataDir, 'forkd.db'), { fileMustExist: true });
    const now = new Date().toISOString();
    db.prepare('INSERT INTO snapshots (tag, status, created_at, updated_at) VALUES (?, ?, ?, ?)').run(
      pub,
      'writing',
      now,
      now,
    );
    db.close();
    d = await startDaemon(args);
    assert.equal(((await call('GET', `/v1/snapshots/${pub}`)).json as SnapshotJson).status, 'ready');
    const events = (await readFile(join(root, 'audit.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event?: string; snapshot_tag?: string; snapshotTag?: string })
      .filter((e) => (e.snapshot_tag ?? e.snapshotTag) === pub);
    assert.deepEqual(
      events.map((e) => e.event),
      ['snapshot.created'],
      'the audit log calls it created, not failed',
    );
    const [k] = await spawnFrom(pub);
    assert.equal(await sh(k!.id, 'hostname'), k!.id);
    assert.equal((await call('DELETE', `/v1/sandboxes/${k!.id}`)).status, 204);
    assert.equal((await call('DELETE', `/v1/snapshots/${pub}`)).status, 200);
  });

  test('memory.bin truncated or changed under a snapshot: the spawn is refused before any QEMU maps it', async () => {
    /** A copy of the test snapshot under `name` (memory.bin copied sparse, the rest linked). */
    const copyOf = async (name: string): Promise<{ tag: string; mem: string }> => {
      const t = `${tag}-${name}`;
      const src = join(snapshotsDir(), tag);
      const dir = join(snapshotsDir(), t);
      await mkdir(dir, { mode: 0o755 });
      for (const f of await readdir(src)) {
        if (f === 'snapshot.json') {
          const meta = JSON.parse(await readFile(join(src, f), 'utf8')) as object;
          await writeFile(join(dir, f), JSON.stringify({ ...meta, tag: t }), { mode: 0o644 });
        } else if (f === 'memory.bin') await pexec('cp', ['--sparse=always', '-p', join(src, f), join(dir, f)]);
        else if (!f.startsWith('.')) await link(join(src, f), join(dir, f));
      }
      return { tag: t, mem: join(dir, 'memory.bin') };
    };
    const refused = async (t: string, pattern: RegExp): Promise<void> => {
      const res = await call('POST', '/v1/sandboxes', { json: { snapshot_tag: t, n: 2, metadata: { fault: 'mem' } } });
      assert.equal(res.status, 422, res.text);
      assert.equal(errorCode(res), 'corrupt_snapshot');
      assert.match((res.json as { error: string }).error, pattern);
      assert.deepEqual(
        (await qemus()).filter((q) => q.includes(`/snapshots/${t}/`)),
        [],
        'no QEMU maps it',
      );
      const rows = ((await call('GET', '/v1/sandboxes')).json as { sandboxes: SandboxJson[] }).sandboxes;
      assert.deepEqual(
        rows.filter((s) => s.metadata.fault === 'mem'),
        [],
        'no sandbox row',
      );
    };
    const truncated = await copyOf('trunc');
    await pexec('truncate', ['-s', '4096', truncated.mem]);
    await refused(truncated.tag, /memory\.bin is 4096 bytes, expected/);

    // Changed in place, same size, after a fork had verified it: the stamp no longer matches.
    const changed = await copyOf('chg');
    const [k] = await spawnFrom(changed.tag);
    assert.equal(await sh(k!.id, 'hostname'), k!.id, 'the intact copy forks');
    assert.equal((await call('DELETE', `/v1/sandboxes/${k!.id}`)).status, 204);
    const size = (await stat(changed.mem)).size;
    const fh = await open(changed.mem, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 1024 * 1024 + 17);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, 1024 * 1024 + 17);
    await fh.close();
    assert.equal((await stat(changed.mem)).size, size, 'same size: only the content differs');
    await refused(changed.tag, /memory\.bin sha256 .* does not match the recorded/);

    // The original is untouched and forks as before.
    const [o] = await spawn(1, { fault: 'mem-ok' });
    assert.equal(await sh(o!.id, 'hostname'), o!.id);
    assert.equal((await call('DELETE', `/v1/sandboxes/${o!.id}`)).status, 204);
    for (const t of [truncated.tag, changed.tag])
      assert.equal((await call('DELETE', `/v1/snapshots/${t}`)).status, 200);
  });

  test('kill -9 of QEMU during an exec: the exec fails promptly and the sandbox is failed', async (t) => {
    const [k] = await spawn(1, { fault: 'qemu-kill' });
    const t0 = Date.now();
    const exec = call('POST', `/v1/sandboxes/${k!.id}/exec`, { json: { cmd: 'sleep 60', timeout_secs: 120 } });
    await sleep(1500);
    process.kill(k!.pid!, 'SIGKILL');
    const res = await exec;
    const ms = Date.now() - t0;
    t.diagnostic(
      `exec answered ${res.status} ${errorCode(res)} ${ms - 1500} ms after the kill: ${(res.json as { error: string }).error}`,
    );
    assert.ok(res.status >= 400, `the exec failed: ${res.status} ${res.text}`);
    assert.ok(ms < 30_000, `the exec answered in ${ms} ms, not at its 120 s deadline`);
    const s = await waitFor('the sandbox to fail', async () => {
      const x = await sandbox(k!.id);
      return x.state === 'failed' ? x : undefined;
    });
    assert.match(String(s.reason), /SIGKILL|qemu exited/);
    await waitFor('its run dir to go', async () => ((await exists(join(dataDir, 'run', k!.id))) ? undefined : true));
    assert.equal((await call('DELETE', `/v1/sandboxes/${k!.id}`)).status, 204);
  });

  test('SIGSTOP of QEMU: its calls time out at their deadline; the daemon serves the others; DELETE cleans up', async (t) => {
    const [frozen, other] = await spawn(2, { fault: 'sigstop' });
    process.kill(frozen!.pid!, 'SIGSTOP');
    try {
      const t0 = Date.now();
      const stuck = call('POST', `/v1/sandboxes/${frozen!.id}/exec`, { json: { cmd: 'true', timeout_secs: 2 } });
      // While it waits: the daemon answers, the other sandbox works.
      assert.equal((await call('GET', '/healthz')).status, 200);
      assert.equal(await sh(other!.id, 'echo alive'), 'alive');
      const f = `/v1/sandboxes/${other!.id}/files?path=/root/f`;
      assert.equal((await call('PUT', f, { body: 'served' })).status, 200);
      assert.equal((await call('GET', f)).text, 'served');
      const res = await stuck;
      const ms = Date.now() - t0;
      t.diagnostic(`the exec on the stopped QEMU answered ${res.status} after ${ms} ms`);
      assert.equal(res.status, 504, res.text);
      assert.equal(errorCode(res), 'timeout');
      assert.ok(ms >= 2000 && ms < 30_000, `timed out after ${ms} ms (deadline: 2 s + the agent margin)`);
      assert.equal(await sh(other!.id, 'echo still'), 'still');
      // A stopped QEMU cannot answer QMP: DELETE must still end it.
      const d0 = Date.now();
      const del = await call('DELETE', `/v1/sandboxes/${frozen!.id}`);
      t.diagnostic(`DELETE of the stopped sandbox answered ${del.status} after ${Date.now() - d0} ms`);
      assert.equal(del.status, 204, del.text);
      await waitFor('the stopped QEMU to go', async () => ((await alive(frozen!.pid!)) ? undefined : true));
    } finally {
      if (await alive(frozen!.pid!)) process.kill(frozen!.pid!, 'SIGCONT');
    }
    assert.equal(await exists(join(dataDir, 'run', frozen!.id)), false);
    assert.equal((await call('DELETE', `/v1/sandboxes/${other!.id}`)).status, 204);
  });
});

// The data dir on a small tmpfs mounted for this suite (in a private 0755 dir, unmounted after),
// filled with fallocate'd files to leave a chosen amount free. BRANCH on a full disk has its own
// suite (branch-disk.test.ts); here: a snapshot build and a pack import, and the snapshot made
// before them stays intact.
describe('faults: the data dir fills up during a snapshot build and a pack import', () => {
  const MiB = 1024 * 1024;
  let root: string;
  let dataDir: string;
  let mounted = false;
  let d: DaemonProcess | undefined;
  const early = uniqueTag('it-fltdisk');
  let pack: Buffer;
  let packSha: string;
  let earlyMeta: string;
  const call = (method: string, path: string, json?: unknown): Promise<ApiResponse> =>
    api(d!.baseUrl, method, path, json === undefined ? {} : { json });
  const { fillTo, unfill, df } = diskFiller(() => dataDir, 8);
  const snapshotEntries = async (): Promise<string[]> => (await readdir(join(dataDir, 'snapshots'))).sort();
  const waitSettled = async (t: string): Promise<SnapshotJson> => {
    for (let i = 0; ; i++) {
      const s = (await call('GET', `/v1/snapshots/${t}`)).json as SnapshotJson;
      if (s.status !== 'writing') return s;
      assert.ok(i < 3000, `snapshot ${t} did not settle`);
      await sleep(100);
    }
  };
  const putPack = (target: string): Promise<ApiResponse> =>
    api(d!.baseUrl, 'PUT', `/v1/snapshots/${target}/pack?sha256=${packSha}`, {
      body: pack,
      headers: { 'content-type': 'application/zstd' },
    });
  /** The snapshot made first: still listed ready, its files as they were, and a child of it answers. */
  const earlyIntact = async (): Promise<void> => {
    const s = (await call('GET', `/v1/snapshots/${early}`)).json as SnapshotJson;
    assert.equal(s.status, 'ready');
    assert.equal(await readFile(join(dataDir, 'snapshots', early, 'snapshot.json'), 'utf8'), earlyMeta);
    const meta = JSON.parse(earlyMeta) as { files: Record<string, { size: number }> };
    for (const [f, { size }] of Object.entries(meta.files))
      assert.equal((await stat(join(dataDir, 'snapshots', early, f))).size, size, f);
  };
  const childOfEarly = async (): Promise<void> => {
    const res = await call('POST', '/v1/sandboxes', { snapshot_tag: early });
    assert.equal(res.status, 201, res.text);
    const id = (res.json as { sandboxes: SandboxJson[] }).sandboxes[0]!.id;
    const exec = await call('POST', `/v1/sandboxes/${id}/exec`, { cmd: 'echo alive' });
    assert.equal((exec.json as { stdout: string }).stdout.trim(), 'alive');
    assert.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 204);
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'forkd-fltdisk-'));
    await chmod(root, 0o755);
    dataDir = join(root, 'data');
    await mkdir(dataDir, { mode: 0o755 });
    await pexec('mount', ['-t', 'tmpfs', '-o', `size=700M,mode=0755`, 'tmpfs', dataDir]);
    mounted = true;
    await ensureImage('default');
    const src = join(TEST_DATA_DIR, 'images', 'default');
    const dst = join(dataDir, 'images', 'default');
    await mkdir(dst, { recursive: true, mode: 0o755 });
    for (const f of await readdir(src)) await copyFile(join(src, f), join(dst, f));
    d = await startDaemon(daemonArgs(dataDir, root));
    assert.equal((await call('POST', '/v1/snapshots', { tag: early, mem_mib: 256, boot_wait_secs: 60 })).status, 202);
    const s = await waitSettled(early);
    assert.equal(s.status, 'ready', String(s.error));
    earlyMeta = await readFile(join(dataDir, 'snapshots', early, 'snapshot.json'), 'utf8');
    const got = await call('GET', `/v1/snapshots/${early}/pack`);
    assert.equal(got.status, 200);
    pack = got.body;
    packSha = String(got.headers['x-forkd-pack-sha256']);
  });

  after(async () => {
    try {
      await unfill();
      if (d && d.proc.exitCode === null) {
        const list = ((await call('GET', '/v1/sandboxes')).json as { sandboxes: { id: string }[] }).sandboxes;
        for (const s of list) await call('DELETE', `/v1/sandboxes/${s.id}`);
        const snaps = ((await call('GET', '/v1/snapshots')).json as { snapshots: SnapshotJson[] }).snapshots;
        for (const s of snaps) await call('DELETE', `/v1/snapshots/${s.tag}?force=true`);
        assert.equal(await d.stop(), 0);
      }
      assert.deepEqual(await ourLeaks(dataDir, join(root, 'audit.log')), []);
      assert.deepEqual(await ourQemuProcesses(root), []);
    } finally {
      if (mounted) await pexec('umount', [dataDir]);
      await rm(root, { recursive: true, force: true });
    }
  });

  test('snapshot build: refused with 507 when the RAM cannot fit; failed and cleaned when the disk fills mid-build', async (t) => {
    await fillTo(100);
    t.diagnostic(`before the refused build: ${await df()}`);
    const refused = await call('POST', '/v1/snapshots', { tag: `${early}-r`, mem_mib: 256 });
    assert.equal(refused.status, 507, refused.text);
    assert.equal(errorCode(refused), 'insufficient_storage');
    assert.match((refused.json as { error: string }).error, /needs .* free/);
    assert.equal((await call('GET', `/v1/snapshots/${early}-r`)).status, 404, 'no row');
    assert.deepEqual(await snapshotEntries(), [early], 'no staging dir');
    await unfill();

    // Admitted, then the disk fills while the parent boots.
    const full = `${early}-f`;
    assert.equal((await call('POST', '/v1/snapshots', { tag: full, mem_mib: 256 })).status, 202);
    for (let i = 0; [...(await commandLines(`/.staging-${full}-`)).keys()].length === 0; i++) {
      assert.ok(i < 600, 'the parent QEMU did not start');
      await sleep(50);
    }
    await fillTo(0);
    t.diagnostic(`while it builds: ${await df()}`);
    const s = await waitSettled(full);
    t.diagnostic(`the build on a full disk ended ${s.status}: ${String(s.error).replace(/\s+/g, ' ').slice(0, 400)}`);
    assert.equal(s.status, 'failed');
    assert.match(String(s.error), /is full: .* free; free some space/, 'the error names the full disk');
    assert.deepEqual(await snapshotEntries(), [early], 'no dir, no staging dir');
    assert.deepEqual([...(await commandLines(`/.staging-${full}-`)).keys()], [], 'no parent QEMU');
    await earlyIntact();
    await unfill();
    assert.equal((await call('DELETE', `/v1/snapshots/${full}`)).status, 200);
    await childOfEarly();
  });

  test('pack import: 507 when the pack or its files cannot fit; no temp file left; the earlier snapshot intact', async (t) => {
    t.diagnostic(`pack: ${pack.length} bytes`);
    // Less free than the pack itself: the upload cannot even be received.
    await fillTo(Math.floor(pack.length / MiB / 2));
    t.diagnostic(`receiving with: ${await df()}`);
    const r1 = await putPack(`${early}-u1`);
    assert.equal(r1.status, 507, r1.text);
    assert.equal(errorCode(r1), 'insufficient_storage');
    assert.match((r1.json as { error: string }).error, /no space left .* free some space/);
    assert.deepEqual(await snapshotEntries(), [early], 'no .recv-* file, no .unpack-* dir');
    await unfill();
    // Room for the pack but not for what it unpacks to.
    const declared = (JSON.parse(earlyMeta) as { files: Record<string, { size: number }> }).files;
    const total = Object.values(declared).reduce((a, f) => a + f.size, 0);
    await fillTo(Math.ceil(pack.length / MiB) + 24);
    const free = Number((await df()).split(/\s+/)[3]) * MiB;
    t.diagnostic(`unpacking ${total} bytes of files with: ${await df()}`);
    assert.ok(free > pack.length && free < total, `free ${free} between the pack and its files`);
    const r2 = await putPack(`${early}-u2`);
    assert.equal(r2.status, 507, r2.text);
    assert.equal(errorCode(r2), 'insufficient_storage');
    assert.match((r2.json as { error: string }).error, /free some space/);
    assert.deepEqual(await snapshotEntries(), [early], 'no .recv-* file, no .unpack-* dir');
    await unfill();
    for (const tg of [`${early}-u1`, `${early}-u2`])
      assert.equal((await call('GET', `/v1/snapshots/${tg}`)).status, 404);
    await earlyIntact();
    // Space is back: the same pack imports.
    const ok = await putPack(`${early}-u3`);
    assert.equal(ok.status, 201, ok.text);
    assert.equal((await call('DELETE', `/v1/snapshots/${early}-u3`)).status, 200);
    await childOfEarly();
  });

  test('pack import: the disk fills while the files are being written: 507, the partial files removed, the earlier snapshot intact', async (t) => {
    // Room for everything when the import starts (its space check passes); once the first file
    // has bytes on disk, the daemon is stopped (SIGSTOP, its zstd then blocks on the pipe), the
    // disk filled, and the daemon resumed: the rest of the files cannot be written.
    const writtenSoFar = async (): Promise<number> => {
      let bytes = 0;
      const walk = async (dir: string): Promise<void> => {
        for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
          const path = join(dir, e.name);
          if (e.isDirectory()) await walk(path);
          else bytes += (await stat(path).catch(() => ({ blocks: 0 }))).blocks * 512;
        }
      };
      for (const n of await snapshotEntries()) if (n.startsWith('.unpack-')) await walk(join(dataDir, 'snapshots', n));
      return bytes;
    };
    const target = `${early}-u4`;
    const put = putPack(target);
    for (let i = 0; (await writtenSoFar()) === 0; i++) {
      assert.ok(i < 3000, 'the unpack wrote nothing');
      await sleep(5);
    }
    process.kill(d!.proc.pid!, 'SIGSTOP');
    try {
      t.diagnostic(`stopped with ${await writtenSoFar()} bytes of files written`);
      await fillTo(0);
      t.diagnostic(`filled: ${await df()}`);
    } finally {
      process.kill(d!.proc.pid!, 'SIGCONT');
    }
    const r = await put;
    assert.equal(r.status, 507, r.text);
    assert.equal(errorCode(r), 'insufficient_storage');
    assert.match((r.json as { error: string }).error, /no space left writing .*free some disk/, 'failed mid-write');
    assert.deepEqual(await snapshotEntries(), [early], 'no .recv-* file, no .unpack-* dir');
    assert.equal((await call('GET', `/v1/snapshots/${target}`)).status, 404);
    await unfill();
    await earlyIntact();
    await childOfEarly();
  });
});
