// Parked VMMs (`--parked-vmms K`, core/parked-vmms.ts) with a real daemon and real guests: a
// first spawn makes the snapshot hot and K child QEMUs are parked for it; the next spawn takes
// them (their ids become the sandboxes'), and each child is a full sandbox with its own
// identity; /metrics counts them; deleting the snapshot gives them up; a daemon killed with
// parked VMMs leaves them to its successor, which kills them at start (they are no sandboxes)
// and re-adopts the real sandbox. Then the leak check.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findLeaks, ourQemuProcesses } from '../helpers/leaks.js';
import {
  api,
  buildSnapshotVia,
  controllerDataDir,
  daemonArgs,
  startDaemon,
  type ApiResponse,
  type DaemonProcess,
} from '../helpers/controller.js';
import { uniqueTag } from '../helpers/env.js';

const K = 2;

interface SandboxJson {
  id: string;
  state: string;
}

describe('parked VMMs: spawns that only restore', () => {
  let root: string;
  let dataDir: string;
  let d: DaemonProcess;
  const tag = uniqueTag('it-park');
  const call = (method: string, path: string, json?: unknown): Promise<ApiResponse> =>
    api(d.baseUrl, method, path, json === undefined ? {} : { json });
  const start = async (): Promise<DaemonProcess> =>
    (d = await startDaemon(daemonArgs(dataDir, root, ['--parked-vmms', String(K), '--kill-on-exit'])));
  const spawn = async (n: number, t = tag): Promise<SandboxJson[]> => {
    const r = await call('POST', '/v1/sandboxes', { snapshot_tag: t, n });
    assert.equal(r.status, 201, r.text);
    return (r.json as { sandboxes: SandboxJson[] }).sandboxes;
  };
  const metric = async (line: RegExp): Promise<number> => {
    const m = (await call('GET', '/metrics')).text;
    return Number(line.exec(m)?.[1] ?? 0);
  };
  const parkedOf = (t: string): Promise<number> =>
    metric(new RegExp(`^forkd_parked_vmms\\{snapshot="${t}"\\} (\\d+)$`, 'm'));
  /** The run dirs whose record says parked. */
  const parkedRunDirs = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const id of await readdir(join(dataDir, 'run')).catch(() => [] as string[])) {
      const rec = await readFile(join(dataDir, 'run', id, 'sandbox.json'), 'utf8').catch(() => '{}');
      if ((JSON.parse(rec) as { parked?: boolean }).parked === true) out.push(id);
    }
    return out.sort();
  };
  const waitParked = async (t: string, n: number): Promise<void> => {
    for (let i = 0; i < 240 && (await parkedOf(t)) !== n; i++) await sleep(250);
    assert.equal(await parkedOf(t), n, `${n} parked VMMs of ${t}`);
  };

  before(async () => {
    ({ root, dataDir } = await controllerDataDir(true));
    await start();
    await buildSnapshotVia(d.baseUrl, { tag, mem_mib: 128 });
  });

  after(async () => {
    if (d.proc.exitCode === null) assert.equal(await d.stop(), 0);
    assert.deepEqual(await findLeaks(dataDir), []);
    assert.deepEqual(await ourQemuProcesses(root), []);
    await rm(root, { recursive: true, force: true });
  });

  test(`a first spawn makes the snapshot hot: ${K} QEMUs park; the next spawn takes them, each child its own`, async () => {
    assert.equal(await parkedOf(tag), 0, 'nothing parked before a spawn');
    const [first] = await spawn(1);
    await waitParked(tag, K);
    const parked = await parkedRunDirs();
    assert.equal(parked.length, K, 'each parked VMM has a run dir whose record says so');
    assert.equal((await ourQemuProcesses(dataDir)).length, 1 + K);

    const kids = await spawn(K + 1);
    const ids = kids.map((k) => k.id);
    for (const id of parked) assert.ok(ids.includes(id), `parked ${id} became a sandbox: ${ids.join(', ')}`);
    assert.ok(kids.every((k) => k.state === 'running'));
    const seen = new Set<string>();
    for (const k of [first!, ...kids]) {
      const r = await call('POST', `/v1/sandboxes/${k.id}/exec`, {
        cmd: 'hostname; head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"',
      });
      assert.equal(r.status, 200, r.text);
      const out = (r.json as { stdout: string; exit_code: number }).stdout.split('\n');
      assert.equal(out[0], k.id, 'hostname is the sandbox id (identity ran)');
      assert.ok(!seen.has(out[1]!), 'fresh entropy per child');
      seen.add(out[1]!);
    }
    assert.equal(await metric(/^forkd_parked_vmm_hits_total (\d+)$/m), K);
    assert.equal(await metric(/^forkd_parked_vmm_misses_total (\d+)$/m), 2, 'the first spawn and the one not parked');
    // Refilled after that spawn.
    await waitParked(tag, K);
    const list = ((await call('GET', '/v1/sandboxes')).json as { sandboxes: SandboxJson[] }).sandboxes;
    assert.equal(list.length, K + 2, 'parked VMMs are not listed as sandboxes');
  });

  test('deleting the snapshot gives up its parked VMMs', async () => {
    const list = ((await call('GET', '/v1/sandboxes')).json as { sandboxes: SandboxJson[] }).sandboxes;
    for (const s of list) assert.equal((await call('DELETE', `/v1/sandboxes/${s.id}`)).status, 204);
    const del = await call('DELETE', `/v1/snapshots/${tag}`);
    assert.equal(del.status, 200, `parked VMMs do not hold a snapshot in use: ${del.text}`);
    // Given up in the background (the delete does not wait for it): each QEMU is killed, then
    // its run dir removed, so wait for both, not just for the processes (CI once saw the gap).
    const gone = async (): Promise<boolean> =>
      (await ourQemuProcesses(dataDir)).length === 0 && (await parkedRunDirs()).length === 0;
    for (let i = 0; i < 40 && !(await gone()); i++) await sleep(250);
    assert.deepEqual(await ourQemuProcesses(dataDir), []);
    assert.deepEqual(await parkedRunDirs(), []);
  });

  test('a daemon killed with parked VMMs: its successor kills them at start and re-adopts the sandbox', async () => {
    const tag2 = uniqueTag('it-park2');
    await buildSnapshotVia(d.baseUrl, { tag: tag2, mem_mib: 128 });
    const [sb] = await spawn(1, tag2);
    await waitParked(tag2, K);
    const parked = await parkedRunDirs();
    assert.equal(parked.length, K);
    assert.equal(await d.stop('SIGKILL'), null);
    assert.equal((await ourQemuProcesses(dataDir)).length, 1 + K, 'QEMUs outlive a killed daemon');
    await start();
    assert.deepEqual(await parkedRunDirs(), [], 'the parked run dirs are gone');
    const qemus = await ourQemuProcesses(dataDir);
    assert.equal(qemus.length, 1, qemus.map((q) => q.cmdline).join('\n'));
    const got = (await call('GET', `/v1/sandboxes/${sb!.id}`)).json as SandboxJson;
    assert.equal(got.state, 'running', 'the real sandbox was re-adopted');
    const r = await call('POST', `/v1/sandboxes/${sb!.id}/exec`, { args: ['true'] });
    assert.equal(r.status, 200, r.text);
    assert.equal((await call('DELETE', `/v1/sandboxes/${sb!.id}`)).status, 204);
    assert.equal((await call('DELETE', `/v1/snapshots/${tag2}`)).status, 200);
  });
});
