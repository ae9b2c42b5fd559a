// Free space for forkd's data. The data dir may not exist yet (doctor before setup), so
// measure the filesystem of its nearest existing ancestor: that is where it will be created.
import { statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { errnoOf, ForkdError } from '../lib/errors.js';

export const GIB = 1024 ** 3;

export interface FreeSpace {
  /** The existing directory that was measured (the path itself or an ancestor). */
  measuredPath: string;
  /** Bytes available to an unprivileged writer (f_bavail, not f_bfree). */
  freeBytes: number;
  totalBytes: number;
}

export async function freeSpace(path: string): Promise<FreeSpace> {
  let current = resolve(path);
  for (;;) {
    try {
      const stats = await statfs(current);
      return { measuredPath: current, freeBytes: stats.bavail * stats.bsize, totalBytes: stats.blocks * stats.bsize };
    } catch (error) {
      const parent = dirname(current);
      // ENOENT/ENOTDIR: climb; anything else (EACCES, ...) is a real answer to report.
      const code = errnoOf(error);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === current) {
        throw new ForkdError(
          'host_error',
          `cannot measure free space of ${current} (for ${path}): ${code ?? 'error'}`,
          {
            cause: error,
          },
        );
      }
      current = parent;
    }
  }
}

/** "12.3 GiB" */
export function formatBytes(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(1)} GiB`;
  return `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
}
