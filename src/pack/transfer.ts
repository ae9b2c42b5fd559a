// `forkd push` and `forkd pull`: a pack to or from a URL. Both go through a temp file inside
// the data dir's snapshots dir (push: so the PUT has a Content-Length, which presigned object
// store URLs need; pull: so the whole download can be checked against --sha256 before a byte
// of it is unpacked). The temp file is removed whatever happens.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ForkdError } from '../lib/errors.js';
import type { CoreContext } from '../core/context.js';
import type { DataPaths } from '../core/paths.js';
import { getToFile, putFile, redactUrl } from './http.js';
import { PACK_EXTENSION } from './manifest.js';
import { packToFile, type PackResult } from './pack.js';
import { ownedTempName, trackTempPath } from './temp-paths.js';
import { DEFAULT_MAX_UNPACK_BYTES, unpackFile, type UnpackOptions, type UnpackResult } from './unpack.js';

export type ByteProgress = (doneBytes: number, totalBytes: number | undefined) => void;

export async function pushSnapshot(
  paths: DataPaths,
  opts: { tag: string; url: URL; withAncestors?: boolean; onPack?: ByteProgress; onUpload?: ByteProgress },
): Promise<PackResult & { compressedBytes: number; url: string }> {
  const temp = await tempFile(paths, 'push');
  const untrack = trackTempPath(temp);
  try {
    const packed = await packToFile(paths, {
      tag: opts.tag,
      output: temp,
      withAncestors: opts.withAncestors ?? false,
      ...(opts.onPack ? { onProgress: opts.onPack } : {}),
    });
    await putFile(opts.url, temp, opts.onUpload ? { onProgress: opts.onUpload } : {});
    return {
      manifest: packed.manifest,
      totalBytes: packed.totalBytes,
      compressedBytes: packed.compressedBytes,
      url: redactUrl(opts.url),
    };
  } finally {
    await rm(temp, { force: true });
    untrack();
  }
}

export interface PullOptions extends Omit<UnpackOptions, 'file' | 'onProgress'> {
  url: URL;
  /** Expected sha256 of the downloaded pack (hex). */
  sha256?: string | undefined;
  onDownload?: ByteProgress;
  onUnpack?: ByteProgress;
}

export async function pullSnapshot(
  ctx: CoreContext,
  opts: PullOptions,
): Promise<UnpackResult & { downloadedBytes: number; sha256: string }> {
  const expected = opts.sha256 === undefined ? undefined : parseSha256(opts.sha256);
  const temp = await tempFile(ctx.paths, 'pull');
  const untrack = trackTempPath(temp);
  try {
    const got = await getToFile(opts.url, temp, {
      maxBytes: opts.maxBytes ?? DEFAULT_MAX_UNPACK_BYTES,
      ...(opts.onDownload ? { onProgress: opts.onDownload } : {}),
    });
    if (expected !== undefined && got.sha256 !== expected)
      throw new ForkdError(
        'corrupt_snapshot',
        `the pack downloaded from ${redactUrl(opts.url)} has sha256 ${got.sha256}, not the expected ${expected}; nothing was unpacked`,
      );
    const result = await unpackFile(ctx, {
      file: temp,
      tag: opts.tag,
      force: opts.force,
      allowIncompatible: opts.allowIncompatible,
      maxBytes: opts.maxBytes,
      ...(opts.onUnpack ? { onProgress: opts.onUnpack } : {}),
    });
    return { ...result, downloadedBytes: got.bytes, sha256: got.sha256 };
  } finally {
    await rm(temp, { force: true });
    untrack();
  }
}

export function parseSha256(raw: string): string {
  if (!/^[0-9a-fA-F]{64}$/.test(raw))
    throw new ForkdError('invalid_argument', `--sha256 must be 64 hex digits, got ${JSON.stringify(raw.slice(0, 80))}`);
  return raw.toLowerCase();
}

async function tempFile(paths: DataPaths, kind: 'push' | 'pull'): Promise<string> {
  await mkdir(paths.snapshotsDir, { recursive: true, mode: 0o755 });
  return join(paths.snapshotsDir, `${await ownedTempName(kind)}${PACK_EXTENSION}`);
}
