// publishSnapshot (src/core/snapshot-publish.ts), the one way a snapshot dir becomes visible,
// on a real file system: checksums recorded, memory.bin given its owner and mode, the dir
// renamed into place; and a chown the kernel refuses fails the publish with the path named
// (it used to be ignored, leaving a snapshot no child of the VM user could map).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { CoreContext } from '../../src/core/context.js';
import type { HostFacts } from '../../src/core/host-facts.js';
import { DataPaths } from '../../src/core/paths.js';
import { publishSnapshot } from '../../src/core/snapshot-publish.js';
import type { SnapshotMeta } from '../../src/core/snapshot-meta.js';
import { ForkdError } from '../../src/lib/errors.js';
import { sha256Of } from '../../src/lib/hash.js';

const pexec = promisify(execFile);

describe('publishSnapshot', () => {
  let dataDir = '';
  let ctx: CoreContext;
  let n = 0;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'forkd-publish-'));
    const paths = new DataPaths(dataDir);
    await mkdir(paths.snapshotsDir, { recursive: true });
    // publishSnapshot reads only the paths and these two facts.
    const facts = { vmUser: undefined, readonlyPrivateMem: false } as unknown as HostFacts;
    ctx = { paths, facts } as CoreContext;
  });

  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  async function staged(tag: string): Promise<string> {
    const dir = ctx.paths.snapshotStagingDir(tag, String(++n));
    await mkdir(dir, { mode: 0o700 });
    await writeFile(join(dir, 'memory.bin'), 'guest ram');
    await writeFile(join(dir, 'vmstate'), 'device state');
    return dir;
  }

  const meta = (tag: string): SnapshotMeta => ({ tag, files: {} }) as unknown as SnapshotMeta;

  test('records checksums, sets owner and mode, renames into place', async () => {
    const dir = await staged('pub-ok');
    const written = await publishSnapshot(ctx, {
      staging: dir,
      tag: 'pub-ok',
      meta: meta('pub-ok'),
      hash: ['memory.bin', 'vmstate'],
      raceNote: 'in the test',
      owner: { uid: 0, gid: 4242 },
    });
    const final = ctx.paths.snapshotDir('pub-ok');
    assert.deepEqual(written?.files['memory.bin'], { sha256: sha256Of('guest ram'), size: 9 });
    const onDisk = JSON.parse(await readFile(join(final, 'snapshot.json'), 'utf8')) as SnapshotMeta;
    assert.deepEqual(onDisk.files, written?.files);
    const mem = await stat(join(final, 'memory.bin'));
    if (process.getuid?.() === 0) assert.deepEqual([mem.uid, mem.gid], [0, 4242]);
    assert.equal(mem.mode & 0o777, 0o660);
    assert.equal((await stat(final)).mode & 0o777, 0o755);
    await assert.rejects(stat(dir), 'the staging dir is gone');
  });

  test('a taken tag is refused, the staging dir stays for its owner to remove', async () => {
    const dir = await staged('pub-ok');
    await assert.rejects(
      publishSnapshot(ctx, { staging: dir, tag: 'pub-ok', raceNote: 'in the test' }),
      (e: unknown) =>
        e instanceof ForkdError && e.code === 'already_exists' && /pub-ok appeared in the test/.test(e.message),
    );
    await stat(dir);
  });

  test('a chown the kernel refuses fails the publish and names the path', async (t) => {
    const dir = await staged('pub-chown');
    const memPath = join(dir, 'memory.bin');
    // Root may give a file to anyone, except an immutable one (chattr +i: EPERM for root too).
    // Not root: giving a file to uid 0 is refused anyway.
    const root = process.getuid?.() === 0;
    if (root) {
      try {
        await pexec('chattr', ['+i', memPath]);
      } catch (err) {
        t.skip(`chattr +i is not available here: ${String(err)}`);
        return;
      }
    }
    try {
      await assert.rejects(
        publishSnapshot(ctx, {
          staging: dir,
          tag: 'pub-chown',
          meta: meta('pub-chown'),
          hash: ['memory.bin', 'vmstate'],
          raceNote: 'in the test',
          owner: { uid: 0, gid: 4242 },
        }),
        (e: unknown) =>
          e instanceof ForkdError &&
          e.code === 'host_error' &&
          e.message.includes(memPath) &&
          /not published/.test(e.message),
      );
    } finally {
      if (root) await pexec('chattr', ['-i', memPath]);
    }
    assert.equal((await readdir(ctx.paths.snapshotsDir)).includes('pub-chown'), false, 'nothing published');
  });
});
