// The pack manifest parser (hostile input: every tag through the one tag rule before any path)
// and the entry policy (what a tar entry may be).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ForkdError } from '../../src/lib/errors.js';
import { parseManifest, declaredBytes, type PackManifest } from '../../src/pack/manifest.js';
import { EntryPolicy } from '../../src/pack/entry-policy.js';
import { TYPE, type TarHeader } from '../../src/pack/tar-header.js';
import { HOSTILE_TAGS } from '../helpers/corpus.js';
import { validPack } from '../helpers/pack-craft.js';

const host = { qemuVersion: '7.2.22', accel: 'tcg' as const };
const corrupt = (pattern: RegExp) => (e: unknown) =>
  e instanceof ForkdError && e.code === 'corrupt_snapshot' && pattern.test(e.message);

function parse(m: unknown): PackManifest {
  return parseManifest(Buffer.from(JSON.stringify(m)));
}

function fresh(): PackManifest {
  return structuredClone(validPack('good', host).manifest);
}

function header(name: string, over: Partial<TarHeader> = {}): TarHeader {
  return {
    name,
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 0,
    typeflag: TYPE.file,
    linkname: '',
    devmajor: 0,
    devminor: 0,
    ...over,
  };
}

test('a valid manifest parses; declaredBytes sums every file', () => {
  const m = parse(fresh());
  assert.equal(m.tag, 'good');
  assert.equal(
    declaredBytes(m),
    Object.values(fresh().snapshots[0]!.files).reduce((a, f) => a + f.size, 0),
  );
});

test('every hostile tag is refused wherever a manifest names one, as a corrupt pack', () => {
  for (const bad of [...HOSTILE_TAGS, '../../etc/x', 42, null]) {
    const a = fresh();
    a.tag = bad as string;
    assert.throws(() => parse(a), corrupt(/invalid pack manifest tag/), JSON.stringify(bad));
    const b = fresh();
    b.snapshots[0]!.tag = bad as string;
    assert.throws(() => parse(b), corrupt(/invalid pack manifest snapshots\[0\]\.tag/), JSON.stringify(bad));
    if (bad === null) continue;
    const c = fresh();
    c.snapshots[0]!.parentTag = bad as string;
    assert.throws(() => parse(c), corrupt(/parentTag/), JSON.stringify(bad));
  }
});

test('file names are limited to what snapshots have; digests must be well formed', () => {
  for (const name of ['../x', '/etc/passwd', 'extra.sh', '__proto__', 'memory.bin/']) {
    const m = fresh();
    const files = m.snapshots[0]!.files as Record<string, unknown>;
    Object.defineProperty(files, name, { value: { sha256: 'a'.repeat(64), size: 1 }, enumerable: true });
    assert.throws(() => parse(m), corrupt(/declares a file/), name);
  }
  const cases: [string, (m: PackManifest) => void, RegExp][] = [
    ['sha', (m) => (m.snapshots[0]!.files['vmstate']!.sha256 = 'xyz'), /no valid sha256/],
    ['size<0', (m) => (m.snapshots[0]!.files['vmstate']!.size = -1), /no valid size/],
    ['size huge', (m) => (m.snapshots[0]!.files['vmstate']!.size = 2 ** 60), /no valid size/],
    ['no memory', (m) => delete m.snapshots[0]!.files['memory.bin'], /lists no memory\.bin/],
    ['format', (m) => ((m as { format: string }).format = 'tar'), /format/],
    ['version', (m) => (m.formatVersion = 2), /format version 2/],
    ['first', (m) => m.snapshots.unshift({ ...m.snapshots[0]!, tag: 'other' }), /first snapshot is other/],
    ['twice', (m) => m.snapshots.push({ ...m.snapshots[0]! }), /listed twice/],
    ['accel', (m) => ((m.snapshots[0] as { accel: string }).accel = 'hvf'), /accelerator/],
    ['self parent', (m) => (m.snapshots[0]!.parentTag = 'good'), /names itself/],
  ];
  for (const [what, mutate, pattern] of cases) {
    const m = fresh();
    mutate(m);
    assert.throws(() => parse(m), corrupt(pattern), what);
  }
  assert.throws(() => parseManifest(Buffer.from('{not json')), corrupt(/not valid JSON/));
});

test('entry policy: only declared regular files, once, of the declared size', () => {
  const m = parse(fresh());
  const policy = new EntryPolicy(m);
  const vmstate = m.snapshots[0]!.files['vmstate']!;
  const cases: [TarHeader, RegExp][] = [
    [header('snapshots/good/vmstate', { typeflag: TYPE.symlink, linkname: '/etc' }), /symbolic link \(to "\/etc"\)/],
    [header('snapshots/good/vmstate', { typeflag: TYPE.hardlink, linkname: '/etc/shadow' }), /hard link/],
    [
      header('snapshots/good/vmstate', { typeflag: TYPE.chardev, devmajor: 1, devminor: 3 }),
      /character device node \(1:3\)/,
    ],
    [header('snapshots/good/vmstate', { typeflag: TYPE.blockdev, devmajor: 8 }), /block device node/],
    [header('snapshots/good/vmstate', { typeflag: TYPE.fifo }), /FIFO/],
    [header('snapshots/good/vmstate', { typeflag: TYPE.contiguous }), /tar type "7"/],
    [header('/etc/cron.d/x'), /absolute path/],
    [header('snapshots/good/../../../x'), /"\.\." path segment/],
    [header('etc/', { typeflag: TYPE.dir }), /directory outside/],
    [header('snapshots/good/extra.sh', { size: 3 }), /undeclared/],
    [header('manifest.json', { size: 3 }), /second manifest\.json/],
    [header('snapshots/good/vmstate', { size: vmstate.size + 1 }), /size differs/],
    [header('snapshots/good//vmstate', { size: vmstate.size }), /undeclared/],
    [header('./snapshots/good/vmstate', { size: vmstate.size }), /undeclared/],
  ];
  for (const [h, pattern] of cases) assert.throws(() => policy.decide(h), corrupt(pattern), h.name);
  assert.deepEqual(policy.decide(header('snapshots/', { typeflag: TYPE.dir })), { kind: 'skip-dir' });
  assert.deepEqual(policy.decide(header('snapshots/good/', { typeflag: TYPE.dir })), { kind: 'skip-dir' });
  assert.throws(
    () => policy.decide(header('snapshots/good', { typeflag: TYPE.dir })),
    corrupt(/same directory appears twice/),
  );
  assert.equal(policy.decide(header('snapshots/good/vmstate', { size: vmstate.size })).kind, 'file');
  assert.throws(
    () => policy.decide(header('snapshots/good/vmstate', { size: vmstate.size })),
    corrupt(/appears twice/),
  );
  assert.deepEqual(policy.missing().sort(), [
    'snapshots/good/initrd.img',
    'snapshots/good/memory.bin',
    'snapshots/good/snapshot.json',
    'snapshots/good/vmlinux',
  ]);
});

test("a layout's rtc is kept when true, absent stays absent, anything but a boolean is refused", () => {
  const withRtc = fresh();
  withRtc.snapshots[0]!.layout.rtc = true;
  assert.equal(parse(withRtc).snapshots[0]!.layout.rtc, true);
  assert.equal(parse(fresh()).snapshots[0]!.layout.rtc, undefined);
  for (const bad of ['on', 1, null]) {
    const m = fresh() as unknown as { snapshots: { layout: Record<string, unknown> }[] };
    m.snapshots[0]!.layout.rtc = bad;
    assert.throws(() => parse(m), corrupt(/no valid device layout/), JSON.stringify(bad));
  }
});
