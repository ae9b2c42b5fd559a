// Soak (issue 14, point 2): spawn -> exec -> write a file -> read it back -> kill, by a few
// clients at once, for a fixed time against one real daemon with real guests. Afterwards the
// daemon's open fds are where they started and its RSS grew by less than a stated bound, and
// nothing is left: no QEMU process, run dir, cgroup, netns or tap (the leak check), and no
// sandbox row in the SQLite database. FORKD_SOAK_SECS sets the time (npm test: 30 s; the long
// profile, npm run test:reliability: 600 s).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { findLeaks, ourQemuProcesses } from '../helpers/leaks.js';
import {
  api,
  buildSnapshotVia,
  controllerDataDir,
  daemonArgs,
  processFigures,
  startDaemon,
  type ApiResponse,
  type DaemonProcess,
} from '../helpers/controller.js';
import { uniqueTag } from '../helpers/env.js';

const SOAK_SECS = Number(process.env.FORKD_SOAK_SECS ?? 30);
const CLIENTS = 3;
/** After the soak, sandboxes gone: a leak per cycle would exceed these. */
const FD_SLACK = 8;
const RSS_SLACK_MIB = 96;

describe(`soak: spawn, exec, file write and read, kill for ${SOAK_SECS} s`, () => {
  let root: string;
  let dataDir: string;
  let d: DaemonProcess;
  const tag = uniqueTag('it-soak');
  const call = (method: string, path: string, json?: unknown): Promise<ApiResponse> =>
    api(d.baseUrl, method, path, json === undefined ? {} : { json });

  before(async () => {
    ({ root, dataDir } = await controllerDataDir(true));
    d = await startDaemon(daemonArgs(dataDir, root));
    await buildSnapshotVia(d.baseUrl, { tag, mem_mib: 128 });
  });

  after(async () => {
    if (d.proc.exitCode === null) {
      await call('DELETE', `/v1/snapshots/${tag}?cascade=true`);
      assert.equal(await d.stop(), 0);
    }
    assert.deepEqual(await findLeaks(dataDir), []);
    assert.deepEqual(await ourQemuProcesses(root), []);
    await rm(root, { recursive: true, force: true });
  });

  test('every cycle works; afterwards fds and RSS are bounded and nothing is left', async (t) => {
    // One warm-up cycle first, so the baseline includes what the first spawn allocates for good
    // (module caches, the restore semaphore, V8's heap growth).
    const cycle = async (): Promise<void> => {
      const r = await call('POST', '/v1/sandboxes', { snapshot_tag: tag });
      assert.equal(r.status, 201, r.text);
      const id = (r.json as { sandboxes: { id: string }[] }).sandboxes[0]!.id;
      const ex = await call('POST', `/v1/sandboxes/${id}/exec`, { args: ['uname', '-n'] });
      assert.equal(ex.status, 200, ex.text);
      assert.equal((ex.json as { stdout: string }).stdout.trim(), id);
      const body = randomBytes(64 * 1024);
      const put = await api(d.baseUrl, 'PUT', `/v1/sandboxes/${id}/files?path=/root/soak.bin`, { body });
      assert.equal(put.status, 200, put.text);
      const got = await call('GET', `/v1/sandboxes/${id}/files?path=/root/soak.bin`);
      assert.equal(got.status, 200);
      assert.ok(got.body.equals(body), 'the file read back is the one written');
      assert.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 204);
    };
    await cycle();
    const start = await processFigures(d.proc.pid!);
    const end = Date.now() + SOAK_SECS * 1000;
    let cycles = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (Date.now() < end) {
          await cycle();
          cycles++;
        }
      }),
    );
    const after = await processFigures(d.proc.pid!);
    t.diagnostic(
      `${cycles} cycles in ${SOAK_SECS} s by ${CLIENTS} clients; daemon fds ${start.fds} -> ${after.fds}, RSS ${start.rssMiB.toFixed(0)} -> ${after.rssMiB.toFixed(0)} MiB`,
    );
    assert.ok(cycles >= CLIENTS, `${cycles} cycles`);
    assert.deepEqual((await call('GET', '/v1/sandboxes')).json, { sandboxes: [] });
    assert.ok(after.fds <= start.fds + FD_SLACK, `fds ${start.fds} -> ${after.fds}`);
    assert.ok(after.rssMiB <= start.rssMiB + RSS_SLACK_MIB, `RSS ${start.rssMiB} -> ${after.rssMiB} MiB`);
    assert.equal(await d.stop(), 0);
    const db = new Database(join(dataDir, 'forkd.db'), { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT count(*) AS n FROM sandboxes').get(), { n: 0 }, 'no sandbox row left');
      assert.deepEqual(db.prepare('PRAGMA integrity_check').get(), { integrity_check: 'ok' });
    } finally {
      db.close();
    }
    d = await startDaemon(daemonArgs(dataDir, root)); // for after(): the snapshot is removed through the API
  });
});
