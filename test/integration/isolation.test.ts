// Per-sandbox cgroups with real QEMU children: a memory limit that OOM-kills only the child
// that exceeds it, CPU and PID limits on the QEMU cgroup, QEMU confined (unprivileged uid,
// seccomp, inside its namespace), and nothing of a sandbox left after dispose.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSnapshot } from '../../src/core/snapshot-create.js';
import { loadSnapshot, removeSnapshot } from '../../src/core/snapshot-store.js';
import { restoreChild, type LoadedSnapshot, type Sandbox } from '../../src/core/sandbox.js';
import type { CoreContext } from '../../src/core/context.js';
import { validateIsolationOptions, type IsolationOptions } from '../../src/core/isolation.js';
import { removeHostNetwork } from '../../src/host/bridge.js';
import { procStatus } from '../../src/vmm/qemu-process.js';
import { ensureImage, testCore, uniqueTag } from '../helpers/env.js';
import { findLeaks } from '../helpers/leaks.js';

const MiB = 1024 * 1024;

async function sh(child: Sandbox, cmd: string, timeoutMs = 60_000): Promise<{ code: number | null; out: string }> {
  const r = await child.agent.exec({ shell: cmd, timeoutMs });
  return { code: r.exitCode, out: `${r.stdout.toString('utf8')}${r.stderr.toString('utf8')}`.trim() };
}

async function readTrim(path: string): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}

/** Resolves true once `child`'s QEMU has exited, false after `ms`. */
async function exitedWithin(child: Sandbox, ms: number): Promise<boolean> {
  return Promise.race([child.vm.process.waitExit().then(() => true), sleep(ms).then(() => false)]);
}

describe('sandbox cgroups and QEMU confinement', () => {
  let core: CoreContext;
  let snap: LoadedSnapshot;
  const tag = uniqueTag('it-iso');
  const live: Sandbox[] = [];

  async function child(isolation: IsolationOptions): Promise<Sandbox> {
    const c = await restoreChild(core, snap, {
      isolation: validateIsolationOptions(isolation, 'deny'),
      readyTimeoutMs: 120_000,
    });
    live.push(c);
    return c;
  }

  before(async () => {
    await ensureImage('default');
    core = await testCore();
    await createSnapshot(core, { tag, image: 'default', memMiB: 512, vcpus: 1, warmup: [], bootTimeoutMs: 180_000 });
    snap = await loadSnapshot(core, tag);
  });

  after(async () => {
    await Promise.allSettled(live.map((c) => c.dispose()));
    await removeSnapshot(core.paths, tag).catch(() => undefined);
    await removeHostNetwork().catch(() => undefined);
    assert.deepEqual(await findLeaks(), []);
  });

  test('memoryMiB=256: a child dirtying ~320 MiB is OOM-killed, its sibling keeps answering', async (t) => {
    const [hog, sibling] = [await child({ memoryMiB: 256 }), await child({ memoryMiB: 256 })];
    const mem = hog.isolation!.cgroup.dirs.find((d) => d.controllers.includes('memory'))!;
    const memDir = mem.path;
    const limitFile = mem.version === 'v1' ? 'memory.limit_in_bytes' : 'memory.max';
    assert.equal(await readTrim(join(memDir, limitFile)), String(256 * MiB));
    assert.match(await readTrim(join(memDir, 'cgroup.procs')), new RegExp(`^${hog.pid}$`, 'm'));
    // The guest has ~450 MiB free of 512; every page the guest writes (tmpfs pages included, even
    // zeros: the guest kernel clears each new page) becomes a private copy in QEMU.
    const fill =
      'mount -o remount,size=480m /dev/shm && dd if=/dev/zero of=/dev/shm/fill bs=1M count=320 && echo filled';
    const outcome = await sh(hog, fill, 180_000).then(
      (r) => `exec returned: ${r.code} ${r.out}`,
      (e: unknown) => `exec failed: ${String(e)}`,
    );
    assert.ok(await exitedWithin(hog, 60_000), `QEMU should be OOM-killed (${outcome})`);
    const peakFile = join(memDir, mem.version === 'v1' ? 'memory.max_usage_in_bytes' : 'memory.peak');
    const peak = Number(await readTrim(peakFile).catch(() => '0')) / MiB;
    t.diagnostic(`hog: ${outcome.slice(0, 120)}; cgroup peak ${peak.toFixed(0)} MiB`);
    assert.equal(hog.vm.process.exited?.signal, 'SIGKILL');
    assert.equal(await hog.isolation!.oomKilled(), true);
    assert.equal((await sh(sibling, 'echo alive')).out, 'alive');
    assert.equal(await sibling.isolation!.oomKilled(), false);
    await hog.dispose();
    assert.equal(await hog.isolation!.oomKilled(), true, 'still known after the cgroup is gone');
    await assert.rejects(stat(memDir), /ENOENT/);
    await sibling.dispose();
  });

  test('cpuLimit and pidsLimit land on the QEMU cgroup; pids bounds QEMU tasks, not guest processes', async (t) => {
    const c = await child({ cpuLimit: 0.5, pidsLimit: 24 });
    const cpu = c.isolation!.cgroup.dirs.find((d) => d.controllers.includes('cpu'))!;
    const cpuDir = cpu.path;
    const pidsDir = c.isolation!.cgroup.dirOf('pids')!;
    for (const dir of c.isolation!.cgroup.dirs)
      assert.match(await readTrim(join(dir.path, 'cgroup.procs')), new RegExp(`^${c.pid}$`, 'm'));
    if (cpu.version === 'v1') {
      assert.equal(await readTrim(join(cpuDir, 'cpu.cfs_quota_us')), '50000');
      assert.equal(await readTrim(join(cpuDir, 'cpu.cfs_period_us')), '100000');
    } else {
      assert.equal(await readTrim(join(cpuDir, 'cpu.max')), '50000 100000');
    }
    assert.equal(await readTrim(join(pidsDir, 'pids.max')), '24');
    const qemuTasks = Number(await readTrim(join(pidsDir, 'pids.current')));
    assert.ok(qemuTasks > 1 && qemuTasks <= 24, `QEMU threads ${qemuTasks}`);

    // 60 processes inside the guest are the guest kernel's business, not the host cgroup's.
    const guest = await sh(c, 'i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done; ps | grep -c "sleep 30"');
    assert.ok(Number(guest.out.split('\n').pop()) >= 60, guest.out);
    assert.equal(Number(await readTrim(join(pidsDir, 'pids.current'))), qemuTasks);

    // A host process inside the cgroup cannot fork past pids.max: dash stops at "Cannot fork".
    const forker = spawn(
      '/bin/sh',
      ['-c', 'read _; i=0; while [ $i -lt 64 ]; do sleep 60 & i=$((i+1)); done; echo all-forked'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let forkerOut = '';
    forker.stdout.on('data', (d: Buffer) => (forkerOut += d.toString()));
    forker.stderr.on('data', (d: Buffer) => (forkerOut += d.toString()));
    const forkerExit = new Promise((resolve) => forker.once('exit', resolve));
    try {
      await writeFile(join(pidsDir, 'cgroup.procs'), String(forker.pid));
      forker.stdin.end('go\n');
      await Promise.race([forkerExit, sleep(60_000)]);
      t.diagnostic(
        `QEMU tasks ${qemuTasks}; host forker: ${forkerOut.trim().slice(0, 120)}; ${await readTrim(join(pidsDir, 'pids.events'))}`,
      );
      assert.doesNotMatch(forkerOut, /all-forked/);
      assert.match(forkerOut, /fork/i);
      assert.ok(Number(await readTrim(join(pidsDir, 'pids.current'))) <= 24);
      assert.match(await readTrim(join(pidsDir, 'pids.events')), /^max [1-9]/m);
      assert.equal((await sh(c, 'echo alive')).out, 'alive', 'QEMU keeps running at its pids limit');
    } finally {
      // The sleeps the forker started are ours; QEMU is not touched.
      forker.kill('SIGKILL');
      for (const pid of (await readTrim(join(pidsDir, 'cgroup.procs'))).split('\n').map(Number)) {
        if (pid > 0 && pid !== c.pid) process.kill(pid, 'SIGKILL');
      }
    }
    await c.dispose();
    for (const dir of c.isolation!.cgroup.dirs) await assert.rejects(stat(dir.path), /ENOENT/);
  });

  test('QEMU in a network namespace runs as the VM user under seccomp, with oom_score_adj 500', async () => {
    const c = await child({ network: { egress: 'deny' } });
    const status = await procStatus(c.pid);
    const vmUser = core.facts.vmUser!;
    assert.ok(status, 'QEMU is running');
    assert.equal(
      status.Uid?.split(/\s+/).every((u) => u === String(vmUser.uid) && u !== '0'),
      true,
      status.Uid,
    );
    assert.equal(
      status.Gid?.split(/\s+/).every((g) => g === String(vmUser.gid)),
      true,
      status.Gid,
    );
    assert.equal(status.Groups, '', 'no supplementary groups');
    assert.equal(status.Seccomp, '2');
    assert.equal(status.NoNewPrivs, '1');
    assert.equal(await readTrim(`/proc/${c.pid}/oom_score_adj`), '500');
    const ns = c.isolation!.netns!;
    assert.equal(await readlink(`/proc/${c.pid}/ns/net`), `net:[${(await stat(`/run/netns/${ns}`)).ino}]`);
    assert.match(
      await readTrim(`/proc/${c.pid}/cmdline`).then((s) => s.replace(/\0/g, ' ')),
      /-netdev tap,id=n0,ifname=tap0,script=no,downscript=no/,
    );
    await c.dispose();
    await assert.rejects(stat(`/run/netns/${ns}`), /ENOENT/);
    await assert.rejects(stat(`/sys/class/net/${ns}`), /ENOENT/);
  });
});
