// BRANCH with the data dir on a small tmpfs holding a snapshot and a sandbox. (1) A filler
// leaves less than the source's RAM free: 507 before anything is written; no snapshot, row or
// staging dir appears; the source keeps running; the gauge is back at 0. (2) Admitted, then
// the disk fills during materialize: the snapshot ends `failed` with no dir, the source runs
// on, and once space is back a BRANCH of the same source succeeds.
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
import { diskFiller } from '../helpers/disk-fill.js';

const pexec = promisify(execFile);
const TMPFS_SIZE = '1000M';

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

  let id: string;
  const { fillTo, unfill, df } = diskFiller(() => dataDir, 16);
  const alive = async (): Promise<void> => {
    const exec = await call('POST', `/v1/sandboxes/${id}/exec`, { cmd: 'echo alive' });
    assert.equal(exec.status, 200, exec.text);
    assert.equal((exec.json as { stdout: string }).stdout.trim(), 'alive');
  };

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
    id = (spawn.json as { sandboxes: { id: string }[] }).sandboxes[0]!.id;
    await fillTo(300);
    console.log(`data dir before the refused BRANCH: ${await df()}`);

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
    await alive();
    await unfill();
  });

  test('the disk fills during materialize: a clean `failed`, the source runs on', async () => {
    console.log(`data dir before the admitted BRANCH: ${await df()}`);
    const t = `${tag}-full`;
    const res = await call('POST', `/v1/sandboxes/${id}/branch`, { tag: t, wait: false });
    assert.equal(res.status, 202, res.text);
    await fillTo(20);
    let s: { status: string; error: string | null };
    for (let i = 0; ; i++) {
      s = (await call('GET', `/v1/snapshots/${t}`)).json as { status: string; error: string | null };
      if (s.status !== 'writing') break;
      assert.ok(i < 1200, 'the BRANCH did not settle');
      await sleep(100);
    }
    console.log(`BRANCH on a full disk ended ${s.status}: ${String(s.error).split('\n')[0]}`);
    assert.equal(s.status, 'failed');
    assert.deepEqual((await readdir(join(dataDir, 'snapshots'))).sort(), [tag], 'no dir, no staging dir');
    const spawnFailed = await call('POST', '/v1/sandboxes', { snapshot_tag: t });
    assert.equal(spawnFailed.status, 409, spawnFailed.text);
    await alive();
    await unfill();
    assert.equal((await call('DELETE', `/v1/snapshots/${t}`)).status, 200);
    // Space is back: the same source branches fine.
    // On tmpfs the live migration's reads of the source's private mapping fill the holes of
    // the parent's sparse memory.bin (shmem allocates on a read fault), so that file is now
    // its full size and less is free than before. Give the tmpfs room, then branch again.
    console.log(`after the failure: ${await df()}`);
    await pexec('mount', ['-o', 'remount,size=1600M', dataDir]);
    const again = await call('POST', `/v1/sandboxes/${id}/branch`, { tag: t });
    assert.equal(again.status, 201, again.text);
    const kid = await call('POST', '/v1/sandboxes', { snapshot_tag: t });
    assert.equal(kid.status, 201, kid.text);
    const kidId = (kid.json as { sandboxes: { id: string }[] }).sandboxes[0]!.id;
    assert.equal((await call('DELETE', `/v1/sandboxes/${kidId}`)).status, 204);
    assert.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 204);
    assert.equal((await call('DELETE', `/v1/snapshots/${t}`)).status, 200);
  });
});
