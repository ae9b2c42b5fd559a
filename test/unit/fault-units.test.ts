// Units behind the fault suite (test/integration/faults.test.ts): which pack temp entries a
// restarted daemon may remove, and the memory.bin stamp that lets every fork refuse a changed
// memory.bin without hashing it each time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownedTempName, removeAbandonedTempPaths } from '../../src/pack/temp-paths.js';
import { MEMORY_STAMP_FILE, verifySnapshotFiles, type SnapshotMeta } from '../../src/core/snapshot-meta.js';
import { ForkdError } from '../../src/lib/errors.js';

test('removeAbandonedTempPaths: only entries whose creating process is gone', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'forkd-unit-tmp-'));
  try {
    const mine = await ownedTempName('unpack');
    assert.match(mine, new RegExp(`^\\.unpack-${process.pid}_\\d+-[0-9a-f]{12}$`));
    await mkdir(join(dir, mine));
    await writeFile(join(dir, `${await ownedTempName('recv')}.forkd.tar.zst`), 'x');
    // A pid that cannot exist (above pid_max), and a live pid with another start time.
    const dead = ['.recv-4194305_12345-abcdef012345.forkd.tar.zst', `.unpack-${process.pid}_1-abcdef012345`];
    await writeFile(join(dir, dead[0]!), 'x');
    await mkdir(join(dir, dead[1]!));
    await writeFile(join(dir, dead[1]!, 'memory.bin'), 'x');
    // packToFile's partial file beside a .serve-* output of a dead daemon.
    const partial = '..serve-4194305_12345-abcdef012345.forkd.tar.zst.partial-0a1b2c3d';
    await writeFile(join(dir, partial), 'x');
    // Names without an identity (older daemons), snapshots and staging dirs are not this function's.
    const kept = ['.unpack-abcdef012345', 'snap', '.staging-snap-0011aabb'];
    for (const k of kept) await mkdir(join(dir, k));
    const removed = await removeAbandonedTempPaths(dir);
    assert.deepEqual(removed.sort(), [...dead, partial].sort());
    const left = (await readdir(dir)).sort();
    for (const k of kept) assert.ok(left.includes(k), k);
    assert.ok(left.includes(mine), 'a live creator keeps its dir');
    assert.equal(left.length, kept.length + 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('verifySnapshotFiles: a same-size change of memory.bin is refused, before and after a verified fork', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'forkd-unit-mem-'));
  try {
    const mem = Buffer.alloc(256 * 1024, 7);
    const vmstate = Buffer.from('device state');
    await writeFile(join(dir, 'memory.bin'), mem);
    await writeFile(join(dir, 'vmstate'), vmstate);
    const digest = (b: Buffer): { sha256: string; size: number } => ({
      sha256: createHash('sha256').update(b).digest('hex'),
      size: b.length,
    });
    const meta = {
      tag: 'unit',
      files: { 'memory.bin': digest(mem), vmstate: digest(vmstate) },
    } as unknown as SnapshotMeta;
    await verifySnapshotFiles(dir, meta);
    const stamped = await stat(join(dir, MEMORY_STAMP_FILE));
    await verifySnapshotFiles(dir, meta); // the stamp matches: not hashed again
    assert.equal((await stat(join(dir, MEMORY_STAMP_FILE))).mtimeMs, stamped.mtimeMs, 'stamp not rewritten');

    const fh = await open(join(dir, 'memory.bin'), 'r+');
    await fh.write(Buffer.from([8]), 0, 1, 1000);
    await fh.close();
    await assert.rejects(
      verifySnapshotFiles(dir, meta),
      (e: unknown) => e instanceof ForkdError && e.code === 'corrupt_snapshot' && /memory\.bin sha256/.test(e.message),
    );
    // A stamp copied along with a replaced file does not vouch for it (another inode, ctime).
    await writeFile(join(dir, 'memory.bin'), mem);
    await verifySnapshotFiles(dir, meta);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
