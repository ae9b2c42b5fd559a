// Issue 2 core path with real QEMU: parent boot + snapshot, a fork of 5 independently
// writable children sharing memory, teardown leaving nothing, and damaged snapshots refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, rm, truncate, open, writeFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSnapshot } from '../../src/core/snapshot-create.js';
import { disposeAll, forkChildren } from '../../src/core/fork.js';
import { loadSnapshot, removeSnapshot } from '../../src/core/snapshot-store.js';
import type { CoreContext } from '../../src/core/context.js';
import type { Sandbox } from '../../src/core/sandbox.js';
import { processPss, processRss } from '../../src/host/memory.js';
import { ForkdError } from '../../src/lib/errors.js';
import { ensureImage, testCore, uniqueTag } from '../helpers/env.js';
import { findLeaks, ourQemuProcesses } from '../helpers/leaks.js';

async function sh(child: Sandbox, cmd: string): Promise<{ code: number | null; out: string }> {
  const r = await child.agent.exec({ shell: cmd, timeoutMs: 30_000 });
  return { code: r.exitCode, out: r.stdout.toString('utf8').trim() };
}

describe('snapshot and copy-on-write fork', () => {
  let core: CoreContext;
  const tag = uniqueTag('it-fork');
  const copies: string[] = [];

  before(async () => {
    await ensureImage('default');
    core = await testCore();
    await createSnapshot(core, {
      tag,
      image: 'default',
      memMiB: 512,
      vcpus: 1,
      warmup: ['echo warm > /root/warm.txt'],
      bootTimeoutMs: 180_000,
    });
  });

  after(async () => {
    for (const t of [tag, ...copies]) await removeSnapshot(core.paths, t).catch(() => undefined);
    assert.deepEqual(await findLeaks(), []);
  });

  test('the snapshot has its files and no parent process remains', async () => {
    const files = await readdir(core.paths.snapshotDir(tag));
    for (const f of ['memory.bin', 'vmstate', 'snapshot.json', 'vmlinux', 'initrd.img'])
      assert.ok(files.includes(f), f);
    assert.deepEqual(await ourQemuProcesses(), []);
  });

  test('5 children: each answers, writes stay private, memory is shared, kill leaves nothing', async () => {
    const first = await forkChildren(core, { tag, n: 5 });
    try {
      assert.deepEqual(first.failures, []);
      assert.equal(first.children.length, 5);
      for (const c of first.children) {
        assert.equal((await sh(c, 'cat /root/warm.txt')).out, 'warm', 'warm-up state is in every child');
        assert.equal((await sh(c, 'hostname')).out, c.id, 'each child has its own hostname');
      }
      const [a, ...siblings] = first.children;
      assert.equal((await sh(a!, 'echo mine > /root/only-a && cat /root/only-a')).out, 'mine');
      for (const s of siblings)
        assert.equal((await sh(s, 'test -e /root/only-a; echo $?')).out, '1', `sibling ${s.id} must not see a's file`);

      // Memory: children share the snapshot's pages. The sum of the 5 PSS stays under 3x one RSS.
      const pss = await Promise.all(first.children.map((c) => processPss(c.pid)));
      const rss = await processRss(a!.pid);
      const sum = pss.reduce<number>((x, y) => x + (y ?? 0), 0);
      // While children map it, the snapshot cannot be removed.
      await assert.rejects(
        removeSnapshot(core.paths, tag),
        (e: unknown) => e instanceof ForkdError && e.code === 'conflict' && /in use by 5/.test(e.message),
      );
      assert.ok(rss !== undefined && rss > 0);
      assert.ok(sum < 3 * (rss ?? 0), `sum of PSS ${sum} must be < 3 x RSS ${rss}`);
    } finally {
      await disposeAll(first.children);
    }
    for (const c of first.children) assert.equal(c.vm.process.exited !== undefined, true, `qemu ${c.pid} exited`);
    assert.deepEqual(await ourQemuProcesses(), []);
    assert.deepEqual(await readdir(core.paths.runRoot), []);

    // A later fork of the same tag starts from the snapshot, not from any child.
    const later = await forkChildren(core, { tag, n: 1 });
    try {
      assert.equal((await sh(later.children[0]!, 'test -e /root/only-a; echo $?')).out, '1');
    } finally {
      await disposeAll(later.children);
    }
  });

  test('dispose() from several callers at once: each returns only after QEMU is gone', async () => {
    const { children, failures } = await forkChildren(core, { tag, n: 1 });
    assert.deepEqual(failures, []);
    const child = children[0]!;
    const pid = child.pid;
    // The daemon's DELETE, a shutdown and a teardown stack can all stop one sandbox at once.
    const callers = [
      child.dispose(),
      child.vm.dispose(),
      child.vm.process.dispose(),
      child.dispose(),
      child.vm.dispose(),
    ];
    const procEntryOnReturn = await Promise.all(callers.map((p) => p.then(() => existsSync(`/proc/${pid}`))));
    assert.deepEqual(
      procEntryOnReturn,
      [false, false, false, false, false],
      `qemu ${pid} gone before any caller returned`,
    );
    assert.deepEqual(await ourQemuProcesses(), []);
  });

  async function damagedCopy(damage: (dir: string) => Promise<void>): Promise<string> {
    const copy = uniqueTag('it-dmg');
    copies.push(copy);
    const dir = core.paths.snapshotDir(copy);
    await cp(core.paths.snapshotDir(tag), dir, { recursive: true });
    const metaPath = join(dir, 'snapshot.json');
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as { tag: string };
    meta.tag = copy;
    await writeFile(metaPath, JSON.stringify(meta));
    await damage(dir);
    return copy;
  }

  async function assertForkRefused(copy: string, pattern: RegExp): Promise<void> {
    await assert.rejects(
      forkChildren(core, { tag: copy, n: 1 }),
      (e: unknown) => e instanceof ForkdError && pattern.test(e.message),
    );
    assert.deepEqual(await ourQemuProcesses(), []);
  }

  test('a corrupted vmstate is refused with a clear error', async () => {
    const copy = await damagedCopy(async (dir) => {
      const fh = await open(join(dir, 'vmstate'), 'r+');
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, 100);
      b[0] = b[0]! ^ 0xff;
      await fh.write(b, 0, 1, 100);
      await fh.close();
    });
    await assertForkRefused(copy, /vmstate sha256 .* does not match/);
  });

  test('a truncated or missing memory.bin is refused', async () => {
    const truncated = await damagedCopy((dir) => truncate(join(dir, 'memory.bin'), 4096));
    await assertForkRefused(truncated, /memory\.bin is 4096 bytes, expected/);
    const missing = await damagedCopy((dir) => rm(join(dir, 'memory.bin')));
    await assertForkRefused(missing, /memory\.bin is missing/);
  });

  test('a snapshot made under another accelerator or QEMU is refused, naming both', async () => {
    const other = await damagedCopy(async (dir) => {
      const metaPath = join(dir, 'snapshot.json');
      const meta = JSON.parse(await readFile(metaPath, 'utf8')) as { accel: string; qemuVersion: string };
      meta.accel = meta.accel === 'kvm' ? 'tcg' : 'kvm';
      meta.qemuVersion = '99.0.0';
      await writeFile(metaPath, JSON.stringify(meta));
    });
    await assert.rejects(
      loadSnapshot(core, other),
      (e: unknown) =>
        e instanceof ForkdError &&
        e.code === 'incompatible_snapshot' &&
        /accelerator: snapshot (kvm|tcg), this host/.test(e.message) &&
        /QEMU version: snapshot 99\.0\.0/.test(e.message),
    );
  });

  test('a broken snapshot.json or an unknown tag is refused', async () => {
    const broken = await damagedCopy((dir) => writeFile(join(dir, 'snapshot.json'), '{not json'));
    await assert.rejects(
      loadSnapshot(core, broken),
      (e: unknown) => e instanceof ForkdError && e.code === 'corrupt_snapshot',
    );
    await assert.rejects(
      loadSnapshot(core, 'no-such-tag-xyz'),
      (e: unknown) => e instanceof ForkdError && e.code === 'not_found',
    );
  });
});
