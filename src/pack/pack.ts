// `forkd pack`: one snapshot (and, on request, its parentTag ancestors) as a .forkd.tar.zst
// stream: manifest.json first, then snapshots/<tag>/<file>. Single pass, bounded memory: the
// manifest's digests come from snapshot.json (recorded when the snapshot was made) and every
// file is re-hashed while it streams, so a snapshot damaged on disk fails the pack instead of
// travelling with a manifest that lies about it.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { ForkdError } from '../lib/errors.js';
import { fsyncFile } from '../lib/fsutil.js';
import { assertTag } from '../lib/tag.js';
import { FORKD_VERSION } from '../lib/version.js';
import { SNAPSHOT_FILES, type DataPaths } from '../core/paths.js';
import { readSnapshotMeta, type SnapshotMeta } from '../core/snapshot-meta.js';
import type { FileDigest } from '../image/manifest.js';
import {
  declaredBytes,
  MANIFEST_NAME,
  MAX_SNAPSHOTS_PER_PACK,
  PACK_FORMAT,
  PACK_FORMAT_VERSION,
  packedSnapshot,
  SNAPSHOT_FILE_NAMES,
  type PackManifest,
} from './manifest.js';
import { TarWriter } from './tar-writer.js';
import { trackTempPath } from './temp-paths.js';
import { zstdCompress } from './zstd.js';

export interface PackOptions {
  tag: string;
  /** Also pack the snapshots named by the parentTag chain. */
  withAncestors?: boolean;
  /** Called as file bytes go into the tar stream: bytes so far, bytes in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface PackResult {
  manifest: PackManifest;
  /** Sum of the packed files' sizes (uncompressed, memory.bin counted in full). */
  totalBytes: number;
}

interface SourceSnapshot {
  dir: string;
  meta: SnapshotMeta;
  metaBytes: Buffer;
}

/** Write a compressed pack to `out` (ended when the pack is complete). */
export async function writePack(paths: DataPaths, opts: PackOptions, out: Writable): Promise<PackResult> {
  const sources = await collectSnapshots(paths, assertTag(opts.tag, 'snapshot tag'), opts.withAncestors ?? false);
  const manifest: PackManifest = {
    format: PACK_FORMAT,
    formatVersion: PACK_FORMAT_VERSION,
    tag: opts.tag,
    createdAt: new Date().toISOString(),
    forkdVersion: FORKD_VERSION,
    snapshots: sources.map((s) => packedSnapshot(s.meta, digestOf(s.metaBytes))),
  };
  const totalBytes = declaredBytes(manifest);
  const zstd = zstdCompress();
  const drained = pipeline(zstd.stdout, out);
  drained.catch(() => undefined); // marks it handled only: awaited below on every path
  try {
    const tar = new TarWriter(zstd.stdin);
    const mtime = Math.floor(Date.now() / 1000);
    const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
    await tar.add({ name: MANIFEST_NAME, size: manifestBytes.length, mtime }, manifestBytes);
    let done = 0;
    const progress = (n: number): void => {
      done += n;
      opts.onProgress?.(done, totalBytes);
    };
    for (const s of sources) {
      const prefix = `snapshots/${s.meta.tag}/`;
      await tar.add({ name: `${prefix}${SNAPSHOT_FILES.meta}`, size: s.metaBytes.length, mtime }, s.metaBytes);
      progress(s.metaBytes.length);
      for (const name of packOrder(Object.keys(s.meta.files))) {
        const digest = s.meta.files[name]!;
        await tar.add(
          { name: `${prefix}${name}`, size: digest.size, mtime },
          verifiedFile(join(s.dir, name), digest, `snapshot ${s.meta.tag}: ${name}`, progress),
        );
      }
    }
    await tar.end();
    zstd.stdin.end();
    await Promise.all([zstd.exited, drained]);
    return { manifest, totalBytes };
  } catch (err) {
    await zstd.stop();
    await drained.catch(() => undefined); // a consequence of stopping zstd; `err` is the cause
    throw err;
  }
}

/** Pack into a file: written beside it under a temporary name, renamed when complete. */
export async function packToFile(
  paths: DataPaths,
  opts: PackOptions & { output: string; force?: boolean },
): Promise<PackResult & { path: string; compressedBytes: number }> {
  const path = resolve(opts.output);
  // A stat that fails finds nothing in the way; a real problem with the path fails the write below.
  if (!opts.force && (await stat(path).catch(() => undefined)))
    throw new ForkdError('already_exists', `${path} already exists; pick another -o or pass --force to overwrite it`);
  const partial = join(dirname(path), `.${basename(path)}.partial-${randomBytes(4).toString('hex')}`);
  const untrack = trackTempPath(partial);
  try {
    const result = await writePack(paths, opts, createWriteStream(partial, { flags: 'wx', mode: 0o644 }));
    await fsyncFile(partial);
    await rename(partial, path);
    return { ...result, path, compressedBytes: (await stat(path)).size };
  } finally {
    await rm(partial, { force: true });
    untrack();
  }
}

/** The snapshot and, when asked, its ancestors: each tag checked, no cycles, bounded depth. */
async function collectSnapshots(paths: DataPaths, tag: string, withAncestors: boolean): Promise<SourceSnapshot[]> {
  const out: SourceSnapshot[] = [];
  let next: string | null = tag;
  while (next !== null) {
    const t = assertTag(next, 'parentTag');
    if (out.some((s) => s.meta.tag === t))
      throw new ForkdError('corrupt_snapshot', `snapshot ${tag}: the parentTag chain loops back to ${t}`);
    if (out.length >= MAX_SNAPSHOTS_PER_PACK)
      throw new ForkdError('invalid_argument', `snapshot ${tag} has more than ${MAX_SNAPSHOTS_PER_PACK} ancestors`);
    out.push(await loadSource(paths, t));
    next = withAncestors ? out[out.length - 1]!.meta.parentTag : null;
  }
  return out;
}

async function loadSource(paths: DataPaths, tag: string): Promise<SourceSnapshot> {
  const dir = paths.snapshotDir(tag);
  const meta = await readSnapshotMeta(dir, tag);
  // Pack the exact bytes whose digest goes into the manifest (validated just above).
  const metaBytes = await readFile(join(dir, SNAPSHOT_FILES.meta));
  if (JSON.stringify(JSON.parse(metaBytes.toString('utf8'))) !== JSON.stringify(meta))
    throw new ForkdError('conflict', `snapshot ${tag}: snapshot.json changed while it was being read; try again`);
  for (const name of Object.keys(meta.files)) {
    if (!SNAPSHOT_FILE_NAMES.includes(name) || name === SNAPSHOT_FILES.meta)
      throw new ForkdError(
        'corrupt_snapshot',
        `snapshot ${tag}: snapshot.json lists a file ${JSON.stringify(name)} a pack cannot carry`,
      );
  }
  return { dir, meta, metaBytes };
}

/** Small files first, memory.bin last: a damaged small file fails the pack early. */
function packOrder(names: string[]): string[] {
  const rank = (n: string): number => (n === SNAPSHOT_FILES.memory ? 2 : n === SNAPSHOT_FILES.rootDisk ? 1 : 0);
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function digestOf(data: Buffer): FileDigest {
  return { sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
}

/** The file's bytes, hashed as they stream; throws at the end if size or sha256 differ from `expected`. */
async function* verifiedFile(
  path: string,
  expected: FileDigest,
  label: string,
  progress: (n: number) => void,
): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const buf = chunk as Buffer;
    hash.update(buf);
    size += buf.length;
    progress(buf.length);
    yield buf;
  }
  const sha256 = hash.digest('hex');
  if (size !== expected.size || sha256 !== expected.sha256) {
    throw new ForkdError(
      'corrupt_snapshot',
      `${label} is ${size} bytes with sha256 ${sha256.slice(0, 12)}..., but snapshot.json records ${expected.size} bytes with ${expected.sha256.slice(0, 12)}...; the snapshot is damaged: re-create it`,
    );
  }
}
