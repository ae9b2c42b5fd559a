// `forkd unpack`: a pack is hostile input. The manifest comes first and is checked whole (every
// tag through the one tag rule before any path exists; sizes against a limit and free disk;
// compatibility with this host); then each entry must be a declared regular file, once, of its
// declared size, and is written inside snapshots/.unpack-<nonce>/ with its sha256 checked as it
// streams. Only when every file is verified are the snapshots renamed into place. Any failure
// removes the temp dir. A daemon reading snapshots from disk sees the new dir once renamed.
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { errnoOf, ForkdError, messageOf } from '../lib/errors.js';
import { assertTag } from '../lib/tag.js';
import type { CoreContext } from '../core/context.js';
import { formatBytes, freeSpace, GIB } from '../host/disk.js';
import { EntryPolicy, type ExpectedFile } from './entry-policy.js';
import { planInstall, prepareStaged, publish, type InstallItem } from './install.js';
import { declaredBytes, MANIFEST_MAX_BYTES, MANIFEST_NAME, parseManifest, type PackManifest } from './manifest.js';
import { SparseFileSink } from './file-sink.js';
import { TYPE } from './tar-header.js';
import { TarReader } from './tar-reader.js';
import { ownedTempName, trackTempPath } from './temp-paths.js';
import { ZSTD_MAGIC, zstdDecompress } from './zstd.js';

/** Default cap on the bytes a pack may declare (override per call: --max-size-gib). */
export const DEFAULT_MAX_UNPACK_BYTES = 64 * GIB;

export interface UnpackOptions {
  file: string;
  /** Store the packed snapshot under this tag instead of the manifest's. */
  tag?: string | undefined;
  /** Replace existing snapshots of the same tags. */
  force?: boolean | undefined;
  /** Store snapshots even if this host's QEMU or accelerator differs (they will not fork here). */
  allowIncompatible?: boolean | undefined;
  maxBytes?: number | undefined;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface UnpackResult {
  manifest: PackManifest;
  totalBytes: number;
  snapshots: { tag: string; storedAs: string; action: InstallItem['action'] }[];
}

export async function unpackFile(ctx: CoreContext, opts: UnpackOptions): Promise<UnpackResult> {
  if (opts.tag !== undefined) assertTag(opts.tag, 'snapshot tag');
  await assertZstdFile(opts.file);
  await mkdir(ctx.paths.snapshotsDir, { recursive: true, mode: 0o755 });
  const temp = join(ctx.paths.snapshotsDir, await ownedTempName('unpack'));
  await mkdir(temp, { mode: 0o700 });
  const untrack = trackTempPath(temp);
  const zstd = zstdDecompress();
  const fed = pipeline(createReadStream(opts.file), zstd.stdin);
  // Marks it handled only: a failure feeding zstd ends its input early, which the tar reader
  // reports as a truncated or damaged pack; `fed` is awaited again on the way out.
  fed.catch(() => undefined);
  // The stream ends only once zstd exits 0: a damaged frame reports zstd's error, not the
  // truncated tar it leaves behind.
  const reader = new TarReader(
    (async function* () {
      yield* zstd.stdout as AsyncIterable<Buffer>;
      await zstd.exited;
    })(),
  );
  try {
    const manifest = await readManifest(reader);
    const totalBytes = declaredBytes(manifest);
    await checkSpace(ctx, totalBytes, opts.maxBytes ?? DEFAULT_MAX_UNPACK_BYTES);
    const plan = await planInstall(ctx, manifest, opts);
    await extractEntries(reader, new EntryPolicy(manifest), temp, (done) => opts.onProgress?.(done, totalBytes));
    await reader.finish();
    await Promise.all([zstd.exited, fed]);
    // Everything verified. Ancestors go in first, so a snapshot never appears before its parent.
    for (const item of plan) await prepareStaged(join(temp, item.packed.tag), item);
    for (const item of [...plan].reverse()) await publish(ctx, join(temp, item.packed.tag), item);
    return {
      manifest,
      totalBytes,
      snapshots: plan.map((p) => ({ tag: p.packed.tag, storedAs: p.target, action: p.action })),
    };
  } finally {
    // Cleanup on every path: a success already consumed the stream, a failure has its own error.
    await reader.close().catch(() => undefined);
    await zstd.stop();
    await fed.catch(() => undefined); // its failure is the one already being reported, or none
    await rm(temp, { recursive: true, force: true });
    untrack();
  }
}

async function assertZstdFile(file: string): Promise<void> {
  const st = await stat(file).catch((err: unknown) => {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
    throw new ForkdError('host_error', `cannot read pack ${file}: ${messageOf(err)}`, { cause: err });
  });
  if (!st) throw new ForkdError('not_found', `pack ${file} not found`);
  if (!st.isFile()) throw new ForkdError('invalid_argument', `pack ${file} is not a regular file`);
  const fh = await open(file, 'r');
  const head = Buffer.alloc(4);
  await fh.read(head, 0, 4, 0).finally(() => fh.close());
  if (!head.equals(ZSTD_MAGIC))
    throw new ForkdError(
      'corrupt_snapshot',
      `pack ${file} is not zstd-compressed (starts with ${head.toString('hex')}, expected ${ZSTD_MAGIC.toString('hex')}); forkd packs are .forkd.tar.zst`,
    );
}

async function readManifest(reader: TarReader): Promise<PackManifest> {
  const h = await reader.next();
  if (!h) throw new ForkdError('corrupt_snapshot', 'pack is empty (no manifest.json)');
  if (h.name !== MANIFEST_NAME || h.typeflag !== TYPE.file)
    throw new ForkdError(
      'corrupt_snapshot',
      `pack's first entry is ${JSON.stringify(h.name.slice(0, 200))}, not the regular file manifest.json`,
    );
  if (h.size > MANIFEST_MAX_BYTES)
    throw new ForkdError('corrupt_snapshot', `pack manifest.json is ${h.size} bytes (at most ${MANIFEST_MAX_BYTES})`);
  const parts: Buffer[] = [];
  for await (const chunk of reader.body()) parts.push(Buffer.from(chunk));
  return parseManifest(Buffer.concat(parts));
}

async function checkSpace(ctx: CoreContext, total: number, max: number): Promise<void> {
  if (total > max)
    throw new ForkdError(
      'payload_too_large',
      `pack declares ${formatBytes(total)} (${total} bytes) of files, beyond the limit of ${formatBytes(max)}; raise it with --max-size-gib if this is expected`,
    );
  // memory.bin is written sparse, so this is conservative: the logical size must fit.
  const free = await freeSpace(ctx.paths.snapshotsDir);
  if (total > free.freeBytes)
    throw new ForkdError(
      'insufficient_storage',
      `pack declares ${formatBytes(total)} of files but ${free.measuredPath} has ${formatBytes(free.freeBytes)} free; free some space and retry`,
    );
}

async function extractEntries(
  reader: TarReader,
  policy: EntryPolicy,
  temp: string,
  progress: (doneBytes: number) => void,
): Promise<void> {
  let done = 0;
  const made = new Set<string>();
  for (let h = await reader.next(); h !== null; h = await reader.next()) {
    const decision = policy.decide(h);
    if (decision.kind === 'skip-dir') continue;
    const { file } = decision;
    // Tag validated by the manifest parser, name one of SNAPSHOT_FILE_NAMES: no traversal possible.
    const dir = join(temp, file.tag);
    if (!made.has(dir)) {
      await mkdir(dir, { mode: 0o755 });
      made.add(dir);
    }
    const sink = await SparseFileSink.create(join(dir, file.name));
    try {
      for await (const chunk of reader.body()) {
        await sink.write(chunk);
        done += chunk.length;
        progress(done);
      }
      checkDigest(file, await sink.finish());
    } finally {
      await sink.close();
    }
  }
  const missing = policy.missing();
  if (missing.length > 0)
    throw new ForkdError('corrupt_snapshot', `pack is missing declared file(s): ${missing.slice(0, 5).join(', ')}`);
}

function checkDigest(file: ExpectedFile, got: { sha256: string; size: number }): void {
  if (got.size !== file.digest.size || got.sha256 !== file.digest.sha256)
    throw new ForkdError(
      'corrupt_snapshot',
      `pack entry snapshots/${file.tag}/${file.name}: sha256 ${got.sha256} does not match the manifest's ${file.digest.sha256}; the pack is damaged or was tampered with`,
    );
}
