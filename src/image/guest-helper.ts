// Builds the native guest agent (src/guest/native/forkd-agent.c) and finds the guest-side
// sources an image carries (the Python eval worker). Static, so the agent needs nothing from
// the guest's libc: the same binary runs in the busybox initramfs and on a Debian root disk.
import { access, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileStatic, STATIC_CFLAGS } from '../lib/cc.js';
import { ForkdError } from '../lib/errors.js';
import { FORKD_VERSION } from '../lib/version.js';

/** A file of src/guest, in the checkout (from src/image) or next to the package (from dist/src/image). */
export async function guestSource(relative: string): Promise<string> {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', 'guest', relative), join(here, '..', '..', '..', 'src', 'guest', relative)];
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
    `${relative} not found (looked in ${candidates.join(', ')}); is the package complete?`,
  );
}

export const agentSource = (): Promise<string> => guestSource('native/forkd-agent.c');
export const pythonWorkerSource = (): Promise<string> => guestSource('workers/py-worker.py');

/** Every source file of the agent (its .c and .h files, sorted): what it is built from. */
export async function agentSources(): Promise<string[]> {
  const dir = dirname(await agentSource());
  return (await readdir(dir))
    .filter((f) => /\.[ch]$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

/** The compiler flags of the agent; part of the image id. */
export const AGENT_CFLAGS = [...STATIC_CFLAGS, `-DFORKD_VERSION="${FORKD_VERSION}"`];

export async function buildGuestAgent(outPath: string, opts: { sourcePath?: string; cc?: string } = {}): Promise<void> {
  const sources = opts.sourcePath ? [opts.sourcePath] : (await agentSources()).filter((f) => f.endsWith('.c'));
  await compileStatic('forkd-agent', sources, outPath, { flags: AGENT_CFLAGS, ...(opts.cc ? { cc: opts.cc } : {}) });
}
