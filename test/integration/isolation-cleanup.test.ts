// `forkd netns cleanup` against real leftovers: namespaces set up for sandboxes that never
// ran (as after a crash), one of them still holding a process (as a live sandbox would).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { SandboxNetns } from '../../src/host/netns.js';
import { newSandboxId } from '../../src/lib/ids.js';
import type { NetCleanupReport } from '../../src/host/netns.js';
import { runCli, testCore } from '../helpers/env.js';
import { findLeaks } from '../helpers/leaks.js';

async function cleanup(): Promise<NetCleanupReport> {
  const r = await runCli(['netns', 'cleanup', '--json'], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as NetCleanupReport;
}

describe('forkd netns cleanup', () => {
  let ipForwardBefore = '';

  before(async () => {
    ipForwardBefore = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  });

  after(async () => {
    await writeFile('/proc/sys/net/ipv4/ip_forward', ipForwardBefore).catch(() => undefined);
    assert.deepEqual(await findLeaks(), []);
  });

  test('removes leftover namespaces and, once none is in use, the bridge and host table', async () => {
    const vmUser = (await testCore()).facts.vmUser!;
    const opts = { uid: vmUser.uid, gid: vmUser.gid, egress: 'deny' as const };
    const [stale, busy] = [
      await SandboxNetns.setup(newSandboxId(), opts),
      await SandboxNetns.setup(newSandboxId(), opts),
    ];
    const sleeper = spawn('nsenter', [`--net=/run/netns/${busy.name}`, 'sleep', '120'], { stdio: 'ignore' });
    const sleeperExit = new Promise((resolve) => sleeper.once('exit', resolve));
    try {
      await new Promise((resolve) => sleeper.once('spawn', resolve));
      const first = await cleanup();
      assert.deepEqual(first.namespaces, [stale.name]);
      assert.deepEqual(first.inUse, [busy.name]);
      assert.equal(first.bridge, false, 'the bridge stays while a sandbox uses it');
      assert.deepEqual(first.errors, []);
      await assert.rejects(stat(`/run/netns/${stale.name}`), /ENOENT/);
      await assert.rejects(stat(`/sys/class/net/${stale.name}`), /ENOENT/);
      await stat(`/sys/class/net/${busy.name}`);
    } finally {
      sleeper.kill('SIGKILL');
      await sleeperExit;
    }
    const second = await cleanup();
    assert.deepEqual(second.namespaces, [busy.name]);
    assert.deepEqual(second.inUse, []);
    assert.equal(second.bridge, true);
    assert.equal(second.hostTable, true);
    const third = await cleanup();
    assert.deepEqual(
      { ...third, errors: [] },
      { namespaces: [], inUse: [], links: [], claims: [], bridge: false, hostTable: false, errors: [] },
    );
  });
});
