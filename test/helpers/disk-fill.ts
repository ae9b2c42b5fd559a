// Filling a small file system (a tmpfs the test mounted) to a chosen free space, for the
// full-disk tests: filler files of `chunkMiB` each until the disk is full (racing writers
// welcome), then some removed again.
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const pexec = promisify(execFile);
const MiB = 1024 * 1024;

export interface DiskFiller {
  /** Fill the file system until it is full, then free about `leaveMiB`. */
  fillTo: (leaveMiB: number) => Promise<void>;
  /** Remove every filler file. */
  unfill: () => Promise<void>;
  /** The `df -m` line of the file system, for messages. */
  df: () => Promise<string>;
}

/** `dir`: the mount point, read at each call (tests learn it in their `before`). */
export function diskFiller(dir: () => string, chunkMiB: number): DiskFiller {
  const fillers: string[] = [];
  return {
    fillTo: async (leaveMiB) => {
      for (let i = fillers.length; ; i++) {
        const f = join(dir(), `filler-${i}`);
        try {
          await pexec('fallocate', ['-l', String(chunkMiB * MiB), f]);
          fillers.push(f);
        } catch {
          await rm(f, { force: true });
          break;
        }
      }
      for (let freed = 0; freed < leaveMiB && fillers.length > 0; freed += chunkMiB) await rm(fillers.pop()!);
    },
    unfill: async () => {
      while (fillers.length > 0) await rm(fillers.pop()!);
    },
    df: async () => {
      return (await pexec('df', ['-m', dir()])).stdout.trim().split('\n')[1]!;
    },
  };
}
