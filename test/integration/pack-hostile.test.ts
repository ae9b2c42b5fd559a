// Hostile packs (issue 7): each is refused with a specific error, nothing is written outside
// the temp dir (sentinel paths stay absent, the data dir lists nothing new) and the temp dir is
// gone. Small hand-made packs; no guest boots here. A valid hand-made pack is the control.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCoreContext, type CoreContext } from '../../src/core/context.js';
import { qemuVersionString } from '../../src/core/host-facts.js';
import { removeSnapshot } from '../../src/core/snapshot-store.js';
import { loadLocalConfig } from '../../src/lib/config.js';
import { ForkdError, type ErrorCode } from '../../src/lib/errors.js';
import { createLogger } from '../../src/lib/log.js';
import { packToFile, writePack } from '../../src/pack/pack.js';
import { TYPE } from '../../src/pack/tar-header.js';
import { unpackFile, type UnpackOptions } from '../../src/pack/unpack.js';
import { createWriteStream } from 'node:fs';
import { runCli } from '../helpers/env.js';
import { findLeaks } from '../helpers/leaks.js';
import {
  fileEntries,
  manifestEntry,
  tarBytes,
  validPack,
  writePackFile,
  zstd,
  type CraftEntry,
  type HostLike,
} from '../helpers/pack-craft.js';

describe('hostile packs', () => {
  let root: string;
  let dataDir: string;
  let packs: string;
  let core: CoreContext;
  let host: HostLike;
  let n = 0;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'forkd-hostile-'));
    await chmod(root, 0o755);
    dataDir = join(root, 'data');
    packs = join(root, 'packs');
    await mkdir(packs);
    core = await createCoreContext(loadLocalConfig({ dataDir }), createLogger({ level: 'error' }));
    host = { qemuVersion: qemuVersionString(core.facts.qemu), accel: core.facts.accel.accel };
  });

  after(async () => {
    const leaks = await findLeaks(dataDir);
    await rm(root, { recursive: true, force: true });
    assert.deepEqual(leaks, []);
    assert.deepEqual(await findLeaks(), []);
  });

  async function pack(entries: CraftEntry[], opts: { end?: boolean } = {}): Promise<string> {
    return writePackFile(join(packs, `p${++n}.forkd.tar.zst`), await tarBytes(entries, opts));
  }

  async function snapshotsListing(): Promise<string[]> {
    return readdir(join(dataDir, 'snapshots')).catch(() => []);
  }

  /** Refused with `code` and a message matching `pattern`; nothing left behind anywhere. */
  async function refused(
    file: string,
    code: ErrorCode,
    pattern: RegExp,
    opts: Partial<UnpackOptions> = {},
  ): Promise<void> {
    const before = await snapshotsListing();
    await assert.rejects(unpackFile(core, { file, ...opts }), (e: unknown) => {
      assert.ok(e instanceof ForkdError, String(e));
      assert.equal(e.code, code, e.message);
      assert.match(e.message, pattern);
      return true;
    });
    assert.deepEqual(await snapshotsListing(), before, 'nothing registered, temp dir removed');
    assert.deepEqual((await readdir(root)).sort(), ['data', 'packs'], 'nothing written beside the data dir');
    for (const sentinel of [
      join(root, 'etc'),
      join(root, 'x'),
      '/etc/x',
      '/tmp/forkd-abs-sentinel',
      join(root, 'sentinel'),
    ])
      assert.equal(await lstat(sentinel).catch(() => undefined), undefined, `${sentinel} must not exist`);
  }

  test('control: a valid hand-made pack unpacks; memory.bin gets the mode children need', async () => {
    const { entries } = validPack('good', host);
    const r = await unpackFile(core, { file: await pack(entries()) });
    assert.deepEqual(r.snapshots, [{ tag: 'good', storedAs: 'good', action: 'new' }]);
    const dir = core.paths.snapshotDir('good');
    // .memory-verified: memory.bin's stat as of its checked sha256 (snapshot-meta.ts, verifyMemory).
    assert.deepEqual((await readdir(dir)).sort(), [
      '.memory-verified',
      'initrd.img',
      'memory.bin',
      'snapshot.json',
      'vmlinux',
      'vmstate',
    ]);
    const mem = await stat(join(dir, 'memory.bin'));
    assert.equal(mem.mode & 0o777, core.facts.readonlyPrivateMem ? 0o640 : 0o660);
    if (core.facts.vmUser) assert.equal(mem.gid, core.facts.vmUser.gid);
    assert.equal(mem.size, 64 * 1024);
    assert.ok(mem.blocks * 512 < mem.size, `memory.bin written sparse (${mem.blocks} blocks)`);
    assert.equal((await stat(dir)).mode & 0o777, 0o755);
    await removeSnapshot(core.paths, 'good');
  });

  test('--tag stores under another tag (snapshot.json follows); an existing tag needs --force', async () => {
    const file = await pack(validPack('good', host).entries());
    await unpackFile(core, { file, tag: 'renamed' });
    const meta = JSON.parse(await readFile(join(core.paths.snapshotDir('renamed'), 'snapshot.json'), 'utf8')) as {
      tag: string;
    };
    assert.equal(meta.tag, 'renamed');
    await refused(file, 'already_exists', /snapshot renamed already exists here and differs; pass --force/, {
      tag: 'renamed',
    });
    const r = await unpackFile(core, { file, tag: 'renamed', force: true });
    assert.equal(r.snapshots[0]!.action, 'replace');
    assert.deepEqual(await snapshotsListing(), ['renamed']);
    await removeSnapshot(core.paths, 'renamed');
  });

  test('manifest tag ../../etc/x is refused before any path exists', async () => {
    const { manifest, files } = validPack('good', host);
    const evil = { ...manifest, tag: '../../etc/x', snapshots: [{ ...manifest.snapshots[0]!, tag: '../../etc/x' }] };
    const file = await pack([manifestEntry(evil), ...fileEntries('../../etc/x', files)]);
    await refused(file, 'corrupt_snapshot', /invalid pack manifest tag "\.\.\/\.\.\/etc\/x": contains a slash/);
    // The same through the CLI: exit 1 and the message.
    const cli = await runCli(['unpack', file, '--data-dir', dataDir]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /forkd unpack: pack manifest: invalid pack manifest tag/);
    await refused(file, 'corrupt_snapshot', /invalid pack manifest tag/);
  });

  test('an absolute entry, a ".." entry', async () => {
    const { entries } = validPack('good', host);
    const abs = { header: { name: '/tmp/forkd-abs-sentinel', size: 4 }, body: Buffer.from('evil') };
    await refused(
      await pack([...entries(), abs]),
      'corrupt_snapshot',
      /"\/tmp\/forkd-abs-sentinel" refused: it is an absolute path/,
    );
    const dotdot = { header: { name: 'snapshots/good/../../../sentinel', size: 4 }, body: Buffer.from('evil') };
    await refused(
      await pack([entries()[0]!, dotdot]),
      'corrupt_snapshot',
      /refused: it contains a "\.\." path segment/,
    );
  });

  test('a symlink to /etc, a hard link, a device node, a FIFO', async () => {
    const [m, ...files] = validPack('good', host).entries();
    const link = (typeflag: string, extra: object): CraftEntry => ({
      header: { name: 'snapshots/good/memory.bin', size: 0, typeflag, ...extra },
    });
    const cases: [CraftEntry, RegExp][] = [
      [link(TYPE.symlink, { linkname: '/etc' }), /memory\.bin" refused: it is a symbolic link \(to "\/etc"\)/],
      [link(TYPE.hardlink, { linkname: '/etc/passwd' }), /refused: it is a hard link \(to "\/etc\/passwd"\)/],
      [link(TYPE.chardev, { devmajor: 1, devminor: 3 }), /refused: it is a character device node \(1:3\)/],
      [link(TYPE.blockdev, { devmajor: 8, devminor: 0 }), /refused: it is a block device node \(8:0\)/],
      [link(TYPE.fifo, {}), /refused: it is a FIFO/],
    ];
    for (const [entry, pattern] of cases) {
      // The link comes after a file was already extracted: the temp dir must still go.
      await refused(await pack([m!, files[0]!, entry, ...files.slice(1)]), 'corrupt_snapshot', pattern);
    }
    const dir = { header: { name: 'etc/', size: 0, typeflag: TYPE.dir } };
    await refused(await pack([m!, dir]), 'corrupt_snapshot', /"etc\/" refused: it is a directory outside/);
  });

  test('a declared-size bomb: beyond the limit, or beyond free disk', async () => {
    const { manifest } = validPack('good', host);
    const bomb = structuredClone(manifest);
    bomb.snapshots[0]!.files['memory.bin']!.size = 2 ** 40; // 1 TiB
    await refused(
      await pack([manifestEntry(bomb)]),
      'payload_too_large',
      /declares 1024\.0 GiB .* beyond the limit of 64\.0 GiB/,
    );
    bomb.snapshots[0]!.files['memory.bin']!.size = 2 ** 50;
    await refused(await pack([manifestEntry(bomb)]), 'insufficient_storage', /free; free some space/, {
      maxBytes: 2 ** 52,
    });
  });

  test('an undeclared extra file, a duplicate entry, a size or sha256 that differs, a missing file', async () => {
    const { entries, files } = validPack('good', host);
    const all = entries();
    const extra = { header: { name: 'snapshots/good/extra.sh', size: 3 }, body: Buffer.from('sh\n') };
    await refused(
      await pack([...all, extra]),
      'corrupt_snapshot',
      /extra\.sh" refused: the manifest does not declare this file/,
    );
    const vmstate = all.find((e) => e.header.name.endsWith('/vmstate'))!;
    await refused(await pack([...all, vmstate]), 'corrupt_snapshot', /vmstate" refused: it appears twice/);
    const longer = Buffer.concat([files.get('vmstate')!, Buffer.from('x')]);
    const sized = all.map((e) => (e === vmstate ? { header: { ...e.header, size: longer.length }, body: longer } : e));
    await refused(
      await pack(sized),
      'corrupt_snapshot',
      /vmstate" refused: it is \d+ bytes, but the manifest declares \d+ \(size differs\)/,
    );
    const tampered = Buffer.from(files.get('vmstate')!);
    tampered[0] = tampered[0]! ^ 0x20;
    const swapped = all.map((e) => (e === vmstate ? { header: e.header, body: tampered } : e));
    await refused(
      await pack(swapped),
      'corrupt_snapshot',
      /snapshots\/good\/vmstate: sha256 [0-9a-f]{64} does not match the manifest's/,
    );
    await refused(
      await pack(all.filter((e) => e !== vmstate)),
      'corrupt_snapshot',
      /missing declared file\(s\): snapshots\/good\/vmstate/,
    );
  });

  test('not a forkd pack: no manifest first, not zstd, damaged zstd, truncated or trailing data', async () => {
    const all = validPack('good', host).entries();
    await refused(
      await pack([...all.slice(1), all[0]!]),
      'corrupt_snapshot',
      /first entry is "snapshots\/good\/memory\.bin", not the regular file manifest\.json/,
    );
    const plain = join(packs, 'plain.tar');
    await writeFile(plain, await tarBytes(all));
    await refused(plain, 'corrupt_snapshot', /is not zstd-compressed/);
    const damaged = await zstd(await tarBytes(all));
    const mid = Math.floor(damaged.length / 2);
    damaged[mid] = damaged[mid]! ^ 0xff;
    await writeFile(join(packs, 'damaged.forkd.tar.zst'), damaged);
    await refused(join(packs, 'damaged.forkd.tar.zst'), 'corrupt_snapshot', /zstd|tar stream|sha256|manifest/);
    await refused(await pack(all, { end: false }), 'corrupt_snapshot', /without an end-of-archive marker/);
    const trailing = Buffer.concat([await tarBytes(all), Buffer.from('#!/bin/sh\n')]);
    await writeFile(join(packs, 'trailing.forkd.tar.zst'), await zstd(trailing));
    await refused(join(packs, 'trailing.forkd.tar.zst'), 'corrupt_snapshot', /data after the end-of-archive marker/);
  });

  test('a snapshot.json that disagrees with its manifest; another QEMU or accelerator', async () => {
    const { manifest, files } = validPack('good', host);
    const lying = structuredClone(manifest);
    lying.snapshots[0]!.layout.memMiB = 4096;
    await refused(
      await pack([manifestEntry(lying), ...fileEntries('good', files)]),
      'corrupt_snapshot',
      /snapshot\.json of good disagrees with the manifest on the device layout/,
    );

    const elsewhere = validPack('elsewhere', { qemuVersion: '1.2.3', accel: host.accel === 'kvm' ? 'tcg' : 'kvm' });
    const file = await pack(elsewhere.entries());
    await refused(
      file,
      'incompatible_snapshot',
      /cannot be restored on this host: accelerator: snapshot \w+, this host \w+; QEMU version: snapshot 1\.2\.3, this host/,
    );
    const r = await unpackFile(core, { file, allowIncompatible: true });
    assert.equal(r.snapshots[0]!.storedAs, 'elsewhere');
    await removeSnapshot(core.paths, 'elsewhere');
  });

  test('ancestors: a parentTag chain unpacks parents first; an identical ancestor is kept; pack --with-ancestors walks it', async () => {
    const child = validPack('leaf1', host, { parentTag: 'base1' });
    const base = validPack('base1', host);
    const manifest = { ...child.manifest, snapshots: [...child.manifest.snapshots, ...base.manifest.snapshots] };
    const file = await pack([
      manifestEntry(manifest),
      ...fileEntries('leaf1', child.files),
      ...fileEntries('base1', base.files),
    ]);
    const r = await unpackFile(core, { file });
    assert.deepEqual(
      r.snapshots.map((s) => [s.tag, s.action]),
      [
        ['leaf1', 'new'],
        ['base1', 'new'],
      ],
    );
    await refused(file, 'already_exists', /snapshot leaf1 already exists/);
    const again = await unpackFile(core, { file, tag: 'leaf2' });
    assert.deepEqual(
      again.snapshots.map((s) => [s.storedAs, s.action]),
      [
        ['leaf2', 'new'],
        ['base1', 'keep'],
      ],
    );
    await refused(file, 'invalid_argument', /--tag base1 is the tag of an ancestor/, { tag: 'base1' });

    // Pack from these (fake) snapshots with their ancestors, and the result round-trips.
    const out = join(packs, 'chain.forkd.tar.zst');
    const packed = await writePack(core.paths, { tag: 'leaf1', withAncestors: true }, createWriteStream(out));
    assert.deepEqual(
      packed.manifest.snapshots.map((s) => s.tag),
      ['leaf1', 'base1'],
    );
    const alone = await writePack(core.paths, { tag: 'leaf1' }, createWriteStream(join(packs, 'alone.forkd.tar.zst')));
    assert.deepEqual(
      alone.manifest.snapshots.map((s) => s.tag),
      ['leaf1'],
    );
    // forkd images shows the lineage; forkd rmi follows the dependents rule.
    const images = await runCli(['images', '--json', '--data-dir', dataDir]);
    const rows = JSON.parse(images.stdout) as { tag: string; ancestors: string[]; dependents: string[] }[];
    assert.deepEqual(
      rows.map((r) => [r.tag, r.ancestors, r.dependents]),
      [
        ['base1', [], ['leaf1', 'leaf2']],
        ['leaf1', ['base1'], []],
        ['leaf2', ['base1'], []],
      ],
    );
    const rmi = await runCli(['rmi', 'base1', 'leaf1', '--data-dir', dataDir]);
    assert.equal(rmi.code, 1);
    assert.match(
      rmi.stderr,
      /snapshot base1 is the parent of leaf2; remove them too .* or pass --force to orphan them/,
    );
    assert.deepEqual(await snapshotsListing(), ['base1', 'leaf1', 'leaf2'], 'nothing removed');
    const all = await runCli(['rmi', 'base1', 'leaf1', 'leaf2', '--data-dir', dataDir]);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(all.stdout.trim().split('\n').at(-1), 'removed base1', 'children first');
    const back = await unpackFile(core, { file: out });
    assert.deepEqual(
      back.snapshots.map((s) => [s.tag, s.action]),
      [
        ['leaf1', 'new'],
        ['base1', 'new'],
      ],
    );
    const forced = await runCli(['rmi', 'base1', '--force', '--data-dir', dataDir]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /removed base1 \(orphaned: leaf1\)/);
    await removeSnapshot(core.paths, 'leaf1');
    assert.deepEqual(await snapshotsListing(), []);
  });

  test('pack refuses a snapshot whose files no longer match snapshot.json, and leaves no partial file', async () => {
    await unpackFile(core, { file: await pack(validPack('rotten', host).entries()) });
    const vmstate = join(core.paths.snapshotDir('rotten'), 'vmstate');
    const data = await readFile(vmstate);
    data[0] = data[0]! ^ 0x01;
    await writeFile(vmstate, data);
    const out = join(packs, 'rotten.forkd.tar.zst');
    await assert.rejects(
      packToFile(core.paths, { tag: 'rotten', output: out }),
      (e: unknown) =>
        e instanceof ForkdError &&
        e.code === 'corrupt_snapshot' &&
        /rotten: vmstate is \d+ bytes with sha256/.test(e.message),
    );
    assert.deepEqual(
      (await readdir(packs)).filter((f) => f.includes('rotten')),
      [],
    );
    await removeSnapshot(core.paths, 'rotten');
  });
});
