// BRANCH with the data dir on a small tmpfs: a snapshot and a sandbox fit, a BRANCH of its
// 512 MiB RAM does not. The daemon refuses with 507 before writing anything; no snapshot,
// row or staging dir appears; the source keeps running; the gauge is back at 0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { findLeaks, ourQemuProcesses } from '../helpers/leaks.js';
import {
  api,
  daemonArgs,
  errorCode,
  startDaemon,
  type ApiResponse,
  type DaemonProcess,
} from '../helpers/controller.js';
import { ensureImage, TEST_DATA_DIR, uniqueTag } from '../helpers/env.js';

const pexec = promisify(execFile);
const TMPFS_SIZE = '600M';

describe('BRANCH on a nearly full data dir', () => {
  let root: string;
  let dataDir: string;
  let mounted = false;
  let d: DaemonProcess | undefined;
  const tag = uniqueTag('it-brdisk');
  const call = (method: string, path: string, json?: unknown): Promise<ApiResponse> =>
    api(d!.baseUrl, method, path, json === undefined ? {} : { json });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'forkd-brdisk-'));
    await chmod(root, 0o755);
    dataDir = join(root, 'data');
    await mkdir(dataDir, { mode: 0o755 });
    await pexec('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0755`, 'tmpfs', dataDir]);
    mounted = true;
    await ensureImage('default');
    const src = join(TEST_DATA_DIR, 'images', 'default');
    const dst = join(dataDir, 'images', 'default');
    await mkdir(dst, { recursive: true, mode: 0o755 });
    for (const f of await readdir(src)) await copyFile(join(src, f), join(dst, f));
    d = await startDaemon(daemonArgs(dataDir, root));
  });

  after(async () => {
    try {
      if (d && d.proc.exitCode === null) {
        const list = ((await call('GET', '/v1/sandboxes')).json as { sandboxes: { id: string }[] }).sandboxes;
        for (const s of list) await call('DELETE', `/v1/sandboxes/${s.id}`);
        await call('DELETE', `/v1/snapshots/${tag}?cascade=true`);
        assert.equal(await d.stop(), 0);
      }
      assert.deepEqual(await findLeaks(dataDir), []);
      assert.deepEqual(await ourQemuProcesses(root), []);
    } finally {
      if (mounted) await pexec('umount', [dataDir]);
      await rm(root, { recursive: true, force: true });
    }
  });

  test('507 before anything is written; the source is unharmed', async () => {
    const res = await call('POST', '/v1/snapshots', { tag, mem_mib: 512, boot_wait_secs: 60 });
    assert.equal(res.status, 202, res.text);
    for (let i = 0; ; i++) {
      const s = (await call('GET', `/v1/snapshots/${tag}`)).json as { status: string; error: string | null };
      if (s.status === 'ready') break;
      assert.notEqual(s.status, 'failed', String(s.error));
      assert.ok(i < 3000, 'snapshot build timed out');
      await sleep(100);
    }
    const spawn = await call('POST', '/v1/sandboxes', { snapshot_tag: tag });
    assert.equal(spawn.status, 201, spawn.text);
    const id = (spawn.json as { sandboxes: { id: string }[] }).sandboxes[0]!.id;
    const { stdout } = await pexec('df', ['-m', dataDir]);
    console.log(`data dir before BRANCH:\n${stdout.trim()}`);

    const branch = await call('POST', `/v1/sandboxes/${id}/branch`, { tag: `${tag}-b` });
    assert.equal(branch.status, 507, branch.text);
    assert.equal(errorCode(branch), 'insufficient_storage');
    assert.match((branch.json as { error: string }).error, /needs .* free/);

    const snaps = (await call('GET', '/v1/snapshots')).json as { snapshots: { tag: string }[] };
    assert.deepEqual(
      snaps.snapshots.map((s) => s.tag),
      [tag],
    );
    assert.deepEqual((await readdir(join(dataDir, 'snapshots'))).sort(), [tag]);
    assert.match((await call('GET', '/metrics')).text, /^forkd_branches_in_flight 0$/m);
    const exec = await call('POST', `/v1/sandboxes/${id}/exec`, { cmd: 'echo alive' });
    assert.equal(exec.status, 200, exec.text);
    assert.equal((exec.json as { stdout: string }).stdout.trim(), 'alive');
    assert.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 204);
  });
});
