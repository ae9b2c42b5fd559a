// files.read | list | stat | remove | mkdir. Paths are absolute (checked by the protocol).
// Reads stream in FILE_CHUNK_BYTES frames, each sent before the next is read, so a 256 MiB
// file costs one chunk of guest memory; the final reply carries size and sha256.
import { createHash } from 'node:crypto';
import { lstat, mkdir, open, readdir, rm, rmdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Stats } from 'node:fs';
import {
  FILE_CHUNK_BYTES,
  MAX_FILE_BYTES,
  MAX_FRAME_BYTES,
  MAX_LIST_ENTRIES,
  type FileEntry,
  type ResultOf,
} from '../protocol/index.js';
import { fsError, GuestError } from './errors.js';
import type { RequestContext } from './session.js';

export function entryOf(name: string, st: Stats): FileEntry {
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  return { name, type, size: st.size, mode: st.mode & 0o177777, mtimeMs: st.mtimeMs };
}

export async function readFileOp(path: string, ctx: RequestContext): Promise<ResultOf<'files.read'>> {
  const fh = await open(path, 'r').catch((err: unknown) => {
    throw fsError(err, `files.read ${path}`);
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new GuestError('bad_request', `files.read ${path}: not a regular file`);
    if (st.size > MAX_FILE_BYTES)
      throw new GuestError(
        'too_large',
        `files.read ${path}: ${st.size} bytes is over the ${MAX_FILE_BYTES}-byte limit`,
      );
    const hash = createHash('sha256');
    // One buffer reused: stream() base64-encodes synchronously before returning its promise.
    const buf = Buffer.allocUnsafe(FILE_CHUNK_BYTES);
    let size = 0;
    for (;;) {
      ctx.signal.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      size += bytesRead;
      if (size > MAX_FILE_BYTES)
        throw new GuestError('too_large', `files.read ${path}: grew over the ${MAX_FILE_BYTES}-byte limit while read`);
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      await ctx.stream('data', chunk);
    }
    return { size, sha256: hash.digest('hex') };
  } catch (err) {
    throw fsError(err, `files.read ${path}`);
  } finally {
    await fh.close();
  }
}

/** Leaves room in the reply frame for the envelope; entries past it are flagged `truncated`. */
const LIST_BUDGET_BYTES = MAX_FRAME_BYTES - 16 * 1024;

export async function listOp(path: string): Promise<ResultOf<'files.list'>> {
  const names = await readdir(path).catch((err: unknown) => {
    throw fsError(err, `files.list ${path}`);
  });
  names.sort();
  const entries: FileEntry[] = [];
  let budget = LIST_BUDGET_BYTES;
  let truncated = names.length > MAX_LIST_ENTRIES;
  for (const name of names.slice(0, MAX_LIST_ENTRIES)) {
    const st = await lstat(join(path, name)).catch(() => undefined); // removed meanwhile
    if (!st) continue;
    const entry = entryOf(name, st);
    budget -= Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (budget < 0) {
      truncated = true;
      break;
    }
    entries.push(entry);
  }
  return { entries, truncated };
}

/** lstat: a symlink is reported as one, not followed. */
export async function statOp(path: string): Promise<FileEntry> {
  const st = await lstat(path).catch((err: unknown) => {
    throw fsError(err, `files.stat ${path}`);
  });
  return entryOf(basename(path) || '/', st);
}

export async function removeOp(path: string, recursive: boolean): Promise<Record<string, never>> {
  try {
    const st = await lstat(path);
    if (st.isDirectory() && !recursive) await rmdir(path);
    else await rm(path, { recursive, force: false });
    return {};
  } catch (err) {
    throw fsError(err, `files.remove ${path}`);
  }
}

export async function mkdirOp(path: string, parents: boolean): Promise<Record<string, never>> {
  try {
    await mkdir(path, { recursive: parents });
    return {};
  } catch (err) {
    throw fsError(err, `files.mkdir ${path}`);
  }
}
