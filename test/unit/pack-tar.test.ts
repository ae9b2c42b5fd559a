// forkd's own tar writer and strict reader: header checksums, pax size, refusals, and
// interoperability with GNU tar in both directions (GNU tar only ever reads our trusted output
// or writes a file we made; hostile input never goes near it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { ForkdError } from '../../src/lib/errors.js';
import {
  BLOCK,
  decodeHeader,
  encodeHeader,
  paxRecord,
  parsePaxRecords,
  RECORD,
  TYPE,
  USTAR_MAX_SIZE,
} from '../../src/pack/tar-header.js';
import { TarReader } from '../../src/pack/tar-reader.js';
import { tarBytes } from '../helpers/pack-craft.js';

const pexec = promisify(execFile);

const corrupt = (pattern: RegExp) => (e: unknown) =>
  e instanceof ForkdError && e.code === 'corrupt_snapshot' && pattern.test(e.message);

/** Feed bytes in awkward chunk sizes, as a pipe might. */
function chunked(data: Buffer, size = 7): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) pieces.push(data.subarray(i, i + size));
  return Readable.from(pieces);
}

async function readAll(data: Buffer): Promise<{ name: string; typeflag: string; body: Buffer }[]> {
  const r = new TarReader(chunked(data, 333));
  const out: { name: string; typeflag: string; body: Buffer }[] = [];
  for (let h = await r.next(); h; h = await r.next()) {
    const parts: Buffer[] = [];
    for await (const c of r.body()) parts.push(Buffer.from(c));
    out.push({ name: h.name, typeflag: h.typeflag, body: Buffer.concat(parts) });
  }
  await r.finish();
  return out;
}

test('header round trip; the checksum is the POSIX unsigned sum with the field as spaces', () => {
  const block = encodeHeader({ name: 'snapshots/a/vmstate', size: 12345, mode: 0o640, mtime: 1_700_000_000 });
  assert.equal(block.length, BLOCK);
  const sum = [...block].reduce((a, b, i) => a + (i >= 148 && i < 156 ? 0x20 : b), 0);
  assert.equal(parseInt(block.toString('latin1', 148, 154), 8), sum);
  const h = decodeHeader(block);
  assert.equal(h.name, 'snapshots/a/vmstate');
  assert.equal(h.size, 12345);
  assert.equal(h.mode, 0o640);
  assert.equal(h.mtime, 1_700_000_000);
  assert.equal(h.typeflag, TYPE.file);
});

test('a flipped header byte fails the checksum', () => {
  const block = encodeHeader({ name: 'manifest.json', size: 10 });
  block[5] = block[5]! ^ 0x01;
  assert.throws(() => decodeHeader(block), corrupt(/checksum/));
});

test('names of 100 bytes or more are refused by the writer (no long-name extensions)', () => {
  assert.throws(
    () => encodeHeader({ name: 'x'.repeat(100), size: 0 }),
    (e: unknown) => e instanceof ForkdError && e.code === 'invalid_argument' && /longer than 99/.test(e.message),
  );
  assert.doesNotThrow(() => encodeHeader({ name: 'x'.repeat(99), size: 0 }));
  // The longest name forkd writes: snapshots/<64-char tag>/snapshot.json.
  assert.ok(`snapshots/${'t'.repeat(64)}/snapshot.json`.length < 100);
});

test('pax records carry their own length', () => {
  for (const v of ['1', '8589934592', '9'.repeat(15)]) {
    const r = paxRecord('size', v);
    assert.equal(Number(r.toString().split(' ')[0]), r.length);
    assert.equal(parsePaxRecords(r).size, Number(v));
  }
  assert.throws(() => parsePaxRecords(paxRecord('linkpath', '/etc')), corrupt(/"linkpath" is not supported/));
  assert.throws(() => parsePaxRecords(paxRecord('path', '../x')), corrupt(/"path" is not supported/));
  assert.throws(() => parsePaxRecords(Buffer.from('99 size=1\n')), corrupt(/bad length/));
  assert.throws(() => parsePaxRecords(paxRecord('size', '-1')), corrupt(/not a whole number/));
});

test('files of 8 GiB and more get a pax size record the reader applies', async () => {
  const big = USTAR_MAX_SIZE + 6;
  const pax = paxRecord('size', String(big));
  const data = Buffer.concat([
    encodeHeader({ name: 'PaxHeader', size: pax.length, typeflag: TYPE.paxLocal }),
    pax,
    Buffer.alloc(BLOCK - pax.length),
    encodeHeader({ name: 'snapshots/a/memory.bin', size: big }),
  ]);
  assert.equal(decodeHeader(data.subarray(2 * BLOCK)).size, 0, 'the ustar field holds 0');
  const r = new TarReader(chunked(data));
  const h = await r.next();
  assert.equal(h?.size, big);
  // The body is not there: reading it reports a truncated stream, not a short file.
  await assert.rejects(
    async () => {
      for await (const _ of r.body()) void _;
    },
    corrupt(/ends inside snapshots\/a\/memory\.bin/),
  );
});

test('writer -> reader round trip across odd chunk boundaries; padded to whole records', async () => {
  const entries = [
    { header: { name: 'manifest.json', size: 3 }, body: Buffer.from('{}\n') },
    { header: { name: 'snapshots/a/empty', size: 0 }, body: Buffer.alloc(0) },
    { header: { name: 'snapshots/a/data', size: 5000 }, body: Buffer.alloc(5000, 0xab) },
  ];
  const data = await tarBytes(entries);
  assert.equal(data.length % RECORD, 0);
  const got = await readAll(data);
  assert.deepEqual(
    got.map((g) => [g.name, g.body.length]),
    entries.map((e) => [e.header.name, e.header.size]),
  );
  assert.ok(got[2]!.body.equals(entries[2]!.body));
});

test('the writer refuses a body that differs from the declared size', async () => {
  await assert.rejects(
    tarBytes([{ header: { name: 'a', size: 10 }, body: Buffer.alloc(9) }]),
    corrupt(/fewer bytes than the 10 bytes declared/),
  );
  await assert.rejects(
    tarBytes([{ header: { name: 'a', size: 10 }, body: Buffer.alloc(11) }]),
    corrupt(/larger than the 10 bytes declared/),
  );
});

test('GNU tar lists what forkd writes, and forkd reads what GNU tar writes as ustar', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'forkd-tar-'));
  try {
    const ours = join(dir, 'ours.tar');
    await writeFile(
      ours,
      await tarBytes([{ header: { name: 'snapshots/t/vmstate', size: 4 }, body: Buffer.from('abcd') }]),
    );
    const { stdout } = await pexec('tar', ['-tvf', ours]);
    assert.match(stdout, /4 .* snapshots\/t\/vmstate/);

    await writeFile(join(dir, 'f.txt'), 'hello from gnu tar\n');
    await pexec('tar', ['--format=ustar', '-C', dir, '-cf', join(dir, 'gnu.tar'), 'f.txt']);
    const got = await readAll(await readFile(join(dir, 'gnu.tar')));
    assert.deepEqual(
      got.map((g) => [g.name, g.body.toString()]),
      [['f.txt', 'hello from gnu tar\n']],
    );
    // GNU format (magic "ustar  ") is refused: packs are POSIX ustar.
    await pexec('tar', ['--format=gnu', '-C', dir, '-cf', join(dir, 'gnu2.tar'), 'f.txt']);
    await assert.rejects(readAll(await readFile(join(dir, 'gnu2.tar'))), corrupt(/not POSIX ustar/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the reader refuses truncation, trailing data, global pax, GNU long names, base-256, odd names', async () => {
  const one = await tarBytes([{ header: { name: 'a', size: 600 }, body: Buffer.alloc(600, 1) }]);
  await assert.rejects(readAll(one.subarray(0, 700)), corrupt(/ends inside a/));
  await assert.rejects(readAll(one.subarray(0, 2 * BLOCK + 512)), corrupt(/without an end-of-archive marker/));
  await assert.rejects(readAll(Buffer.concat([one, Buffer.from('tail')])), corrupt(/after the end-of-archive marker/));
  const noSecondZero = Buffer.concat([
    one.subarray(0, 3 * BLOCK),
    Buffer.alloc(BLOCK),
    encodeHeader({ name: 'b', size: 0 }),
  ]);
  await assert.rejects(readAll(noSecondZero), corrupt(/zero block is followed by data/));

  const end = Buffer.alloc(2 * BLOCK);
  const g = encodeHeader({ name: 'g', size: 0, typeflag: TYPE.paxGlobal });
  await assert.rejects(readAll(Buffer.concat([g, end])), corrupt(/global pax header/));
  const l = encodeHeader({ name: '././@LongLink', size: 0, typeflag: TYPE.gnuLongName });
  await assert.rejects(readAll(Buffer.concat([l, end])), corrupt(/GNU long-name/));

  const b256 = encodeHeader({ name: 'a', size: 0 });
  b256[124] = 0x80;
  // Recompute the checksum so only the base-256 field is wrong.
  b256.fill(0x20, 148, 156);
  const sum = [...b256].reduce((a, b) => a + b, 0);
  b256.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  await assert.rejects(readAll(Buffer.concat([b256, end])), corrupt(/base-256/));

  const odd = encodeHeader({ name: 'a\u00e9', size: 0 });
  await assert.rejects(readAll(Buffer.concat([odd, end])), corrupt(/non-ASCII/));
});
