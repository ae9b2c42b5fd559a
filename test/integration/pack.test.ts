// Issue 7 with real QEMU: a warmed snapshot packed here, unpacked into another data dir, forks
// there with the parent's warm state; a flipped byte in memory.bin inside the pack is refused;
// push and pull through an HTTP server on loopback, and a wrong --sha256 refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createCoreContext, type CoreContext } from '../../src/core/context.js';
import { disposeAll, forkChildren } from '../../src/core/fork.js';
import { createSnapshot } from '../../src/core/snapshot-create.js';
import { loadSnapshot, removeSnapshot } from '../../src/core/snapshot-store.js';
import { loadLocalConfig } from '../../src/lib/config.js';
import { ForkdError } from '../../src/lib/errors.js';
import { createLogger } from '../../src/lib/log.js';
import { sha256File } from '../../src/lib/hash.js';
import { unpackFile } from '../../src/pack/unpack.js';
import { ensureImage, runCli, testCore, uniqueTag } from '../helpers/env.js';
import { findLeaks } from '../helpers/leaks.js';
import { entryDataOffset } from '../helpers/pack-craft.js';

const pexec = promisify(execFile);

describe('pack, unpack, push, pull', () => {
  let core: CoreContext;
  let other: CoreContext;
  let root: string;
  let otherDir: string;
  let packFile: string;
  const tag = uniqueTag('it-pack');

  before(async () => {
    await ensureImage('default');
    core = await testCore();
    root = await mkdtemp(join(tmpdir(), 'forkd-pack-'));
    // The VM user must reach the other data dir's snapshot files.
    await chmod(root, 0o755);
    otherDir = join(root, 'other');
    await mkdir(otherDir, { mode: 0o755 });
    other = await createCoreContext(loadLocalConfig({ dataDir: otherDir }), createLogger({ level: 'error' }));
    packFile = join(root, `${tag}.forkd.tar.zst`);
    await createSnapshot(core, {
      tag,
      image: 'default',
      memMiB: 512,
      vcpus: 1,
      warmup: ['echo warm-from-pack > /root/warm.txt'],
      bootTimeoutMs: 180_000,
    });
  });

  after(async () => {
    await removeSnapshot(core.paths, tag).catch(() => undefined);
    const leaks = await findLeaks(otherDir);
    await rm(root, { recursive: true, force: true });
    assert.deepEqual(leaks, []);
    assert.deepEqual(await findLeaks(), []);
  });

  async function otherSnapshots(): Promise<string[]> {
    return (await readdir(other.paths.snapshotsDir).catch(() => [])).sort();
  }

  test('pack -> unpack into another data dir -> children fork there with the warm state', async () => {
    const packed = await runCli(['pack', '--tag', tag, '-o', packFile, '--json']);
    assert.equal(packed.code, 0, packed.stderr);
    const p = JSON.parse(packed.stdout) as { totalBytes: number; compressedBytes: number; snapshots: string[] };
    assert.deepEqual(p.snapshots, [tag]);
    assert.ok(p.compressedBytes < p.totalBytes / 2, `compressed ${p.compressedBytes} of ${p.totalBytes}`);
    assert.equal((await stat(packFile)).size, p.compressedBytes);

    const unpacked = await runCli(['unpack', packFile, '--data-dir', otherDir, '--json']);
    assert.equal(unpacked.code, 0, unpacked.stderr);
    assert.deepEqual((JSON.parse(unpacked.stdout) as { snapshots: unknown }).snapshots, [
      { tag, storedAs: tag, action: 'new' },
    ]);
    assert.deepEqual(await otherSnapshots(), [tag]);
    const mem = await stat(join(other.paths.snapshotDir(tag), 'memory.bin'));
    assert.equal(mem.mode & 0o777, other.facts.readonlyPrivateMem ? 0o640 : 0o660);
    if (other.facts.vmUser) assert.equal(mem.gid, other.facts.vmUser.gid);

    const res = await forkChildren(other, { tag, n: 2 });
    try {
      assert.deepEqual(res.failures, []);
      for (const c of res.children) {
        const r = await c.agent.exec({ shell: 'cat /root/warm.txt; hostname', timeoutMs: 30_000 });
        assert.deepEqual(r.stdout.toString().trim().split('\n'), ['warm-from-pack', c.id]);
      }
    } finally {
      await disposeAll(res.children);
    }
    assert.deepEqual(await findLeaks(otherDir), []);
  });

  test('an existing tag needs --force; --tag stores a second copy', async () => {
    const again = await runCli(['unpack', packFile, '--data-dir', otherDir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`snapshot ${tag} already exists here and differs; pass --force`));
    const forced = await runCli(['unpack', packFile, '--data-dir', otherDir, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, new RegExp(`${tag}: replaced`));
    const copy = `${tag}-copy`;
    const renamed = await runCli(['unpack', packFile, '--data-dir', otherDir, '--tag', copy]);
    assert.equal(renamed.code, 0, renamed.stderr);
    assert.equal((await loadSnapshot(other, copy)).meta.tag, copy);
    await removeSnapshot(other.paths, copy);
    assert.deepEqual(await otherSnapshots(), [tag]);
  });

  test('one flipped byte in memory.bin inside the pack: refused, nothing registered, temp dir gone', async () => {
    const tar = join(root, 'flip.tar');
    await pexec('sh', ['-c', 'zstd -q -dc < "$1" > "$2"', 'sh', packFile, tar]);
    const at = (await entryDataOffset(tar, `snapshots/${tag}/memory.bin`)) + 3 * 1024 * 1024 + 17;
    const fh = await open(tar, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ 0x01;
    await fh.write(b, 0, 1, at);
    await fh.close();
    const damaged = join(root, 'flip.forkd.tar.zst');
    await pexec('zstd', ['-q', '-f', tar, '-o', damaged]);
    await rm(tar);
    await assert.rejects(
      unpackFile(other, { file: damaged, tag: 'flipped' }),
      (e: unknown) =>
        e instanceof ForkdError &&
        e.code === 'corrupt_snapshot' &&
        new RegExp(`snapshots/${tag}/memory\\.bin: sha256 [0-9a-f]{64} does not match`).test(e.message),
    );
    assert.deepEqual(await otherSnapshots(), [tag], 'no flipped snapshot, no .unpack- dir');
  });

  test('push to and pull from an HTTP server on loopback; a wrong --sha256 is refused', async () => {
    const stored = join(root, 'served.forkd.tar.zst');
    const server = http.createServer((req, res) => {
      void (async () => {
        if (req.method === 'PUT' && req.url?.startsWith('/bucket/snap?')) {
          await pipeline(req, createWriteStream(stored));
          res.writeHead(200).end();
        } else if (req.method === 'GET' && req.url === '/bucket/snap') {
          res.writeHead(200, { 'content-length': String((await stat(stored)).size) });
          await pipeline(createReadStream(stored), res);
        } else if (req.method === 'GET' && req.url === '/moved') {
          res.writeHead(302, { location: '/bucket/snap' }).end();
        } else {
          req.resume();
          res.writeHead(404).end('no such object');
        }
      })();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const pushed = await runCli(['push', '--tag', tag, `${base}/bucket/snap?X-Signature=s3cr3t`]);
      assert.equal(pushed.code, 0, pushed.stderr);
      assert.ok(!`${pushed.stdout}${pushed.stderr}`.includes('s3cr3t'), 'the presigned query is never shown');
      const digest = await sha256File(stored);

      const wrong = await runCli([
        'pull',
        `${base}/bucket/snap`,
        '--data-dir',
        otherDir,
        '--tag',
        'pulled-bad',
        '--sha256',
        'ab'.repeat(32),
      ]);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, new RegExp(`has sha256 ${digest}, not the expected abab`));
      assert.deepEqual(await otherSnapshots(), [tag], 'nothing registered, no .pull- file left');

      const missing = await runCli(['pull', `${base}/nothing`, '--data-dir', otherDir]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /GET http:\/\/127\.0\.0\.1:\d+\/nothing answered 404 Not Found: no such object/);

      const pulled = await runCli([
        'pull',
        `${base}/moved`,
        '--data-dir',
        otherDir,
        '--tag',
        'pulled',
        '--sha256',
        digest.toUpperCase(),
        '--json',
      ]);
      assert.equal(pulled.code, 0, pulled.stderr);
      assert.equal((JSON.parse(pulled.stdout) as { sha256: string }).sha256, digest);
      assert.equal((await loadSnapshot(other, 'pulled')).meta.tag, 'pulled');
      await removeSnapshot(other.paths, 'pulled');
      assert.deepEqual(await otherSnapshots(), [tag]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
