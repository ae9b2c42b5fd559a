// Compiles a small static C program with gcc: the guest agent (src/guest/native) and the host's
// QEMU launcher (src/host/native). Warnings are errors; a failure carries the compiler's tail.
import { execFile } from 'node:child_process';
import { ForkdError } from './errors.js';

export const STATIC_CFLAGS = ['-static', '-Os', '-Wall', '-Wextra', '-Werror', '-s'] as const;

export async function compileStatic(
  what: string,
  sources: readonly string[],
  outPath: string,
  opts: { cc?: string; flags?: readonly string[] } = {},
): Promise<void> {
  const cc = opts.cc ?? 'gcc';
  const args = [...(opts.flags ?? STATIC_CFLAGS), '-o', outPath, ...sources];
  await new Promise<void>((resolve, reject) => {
    execFile(cc, args, { timeout: 120_000, maxBuffer: 4 * 1024 * 1024 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const hint = (err as NodeJS.ErrnoException).code === 'ENOENT' ? ' (install gcc and libc6-dev)' : '';
      const tail = stderr.trim().split('\n').slice(-20).join('\n');
      reject(
        new ForkdError(
          'host_error',
          `building ${what} with ${cc} failed${hint}: ${err.message.split('\n')[0]}${tail ? `\n${tail}` : ''}`,
          { cause: err, details: { sources: sources.join(' '), outPath } },
        ),
      );
    });
  });
}
