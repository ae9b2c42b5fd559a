// Builds forkd-guestctl, the static C helper the guest agent runs for what Node cannot do
// (entropy ioctls, clock_settime). Static so it needs nothing from the guest's libc.
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ForkdError } from '../lib/errors.js';

/** The C source: in the checkout at src/guest/native, found from src/image or dist/src/image. */
export async function guestHelperSource(): Promise<string> {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, '..', 'guest', 'native', 'forkd-guestctl.c'),
    join(here, '..', '..', '..', 'src', 'guest', 'native', 'forkd-guestctl.c'),
  ];
  for (const path of candidates) {
    if (
      await access(path).then(
        () => true,
        () => false,
      )
    )
      return path;
  }
  throw new ForkdError(
    'host_error',
    `forkd-guestctl.c not found (looked in ${candidates.join(', ')}); is the package complete?`,
  );
}

export async function buildGuestHelper(
  outPath: string,
  opts: { sourcePath?: string; cc?: string } = {},
): Promise<void> {
  const source = opts.sourcePath ?? (await guestHelperSource());
  const cc = opts.cc ?? 'gcc';
  const args = ['-static', '-Os', '-Wall', '-Wextra', '-Werror', '-s', '-o', outPath, source];
  await new Promise<void>((resolve, reject) => {
    execFile(cc, args, { timeout: 120_000, maxBuffer: 4 * 1024 * 1024 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const hint = (err as NodeJS.ErrnoException).code === 'ENOENT' ? ' (install gcc and libc6-dev)' : '';
      const tail = stderr.trim().split('\n').slice(-20).join('\n');
      reject(
        new ForkdError(
          'host_error',
          `building forkd-guestctl with ${cc} failed${hint}: ${err.message.split('\n')[0]}${tail ? `\n${tail}` : ''}`,
          { cause: err, details: { source, outPath } },
        ),
      );
    });
  });
}
