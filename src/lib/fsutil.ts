// Small filesystem helpers shared across layers.
import { copyFile, link, open, stat } from 'node:fs/promises';

/** Whether stat succeeds. Any failure (ENOENT, ENOTDIR, EACCES) answers "no": callers only branch on it. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    // any stat failure (ENOENT, EACCES) reads as absent; callers that must tell them apart stat themselves
    return false;
  }
}

/** Hard link when on the same filesystem (no copy, shared page cache), else copy. */
export async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    // EXDEV (another filesystem) or EPERM (no hard links there): copy. A real problem
    // (ENOENT, ENOSPC) fails the copy as well, with its own error.
    await copyFile(from, to);
  }
}

/**
 * fsync a file's data, so a later rename publishes complete contents. Read-only: Linux syncs
 * through any descriptor, and a file the caller may not write (immutable, read-only mode) can
 * still be made durable.
 */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
