// The files forkd puts in a guest: static busybox, the native agent, the boot scripts, the
// Python eval worker (a small text file, used only where the image has Python) and, for
// images built with `--runtime node`, the host's own `node` with its shared libraries and the
// bundled JS eval worker.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ForkdError } from '../lib/errors.js';
import { run } from '../lib/exec.js';
import { AGENT_RUN, FORKD_LIB, INITTAB, INIT_STAGE2 } from './guest-init.js';

export const HOST_BUSYBOX = '/bin/busybox';

/** A file to place in the guest: either copied from the host or given as content. */
export interface GuestFile {
  guestPath: string;
  mode: number;
  source: string | Buffer;
}

/** Language runtimes an image may carry beside busybox and the agent. */
export const RUNTIMES = ['node'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** The bundled JS eval worker, built by `npm run build` next to this module's compiled output. */
export function jsWorkerBundlePath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', 'guest', 'js-worker.mjs');
}

/** Parse `ldd` output into absolute library paths (the loader included). */
export function parseLdd(output: string): string[] {
  const libs = new Set<string>();
  for (const line of output.split('\n')) {
    const arrow = /=>\s*(\/\S+)/.exec(line);
    const bare = /^\s*(\/\S+)\s+\(/.exec(line);
    const path = arrow?.[1] ?? bare?.[1];
    if (path) libs.add(path);
  }
  return [...libs].sort();
}

export async function nodeRuntimeFiles(nodePath = process.execPath): Promise<GuestFile[]> {
  const { stdout } = await run('ldd', [nodePath]);
  const libs = parseLdd(stdout);
  if (libs.length === 0)
    throw new ForkdError('host_error', `ldd found no libraries for ${nodePath}; is it dynamically linked?`);
  return [
    { guestPath: '/usr/bin/node', mode: 0o755, source: nodePath },
    ...libs.map((l) => ({ guestPath: l, mode: 0o755, source: l })),
  ];
}

export async function forkdGuestFiles(opts: {
  agentPath: string;
  pythonWorkerPath: string;
  runtimes: readonly Runtime[];
}): Promise<GuestFile[]> {
  const files: GuestFile[] = [
    { guestPath: `${FORKD_LIB}/busybox`, mode: 0o755, source: HOST_BUSYBOX },
    { guestPath: `${FORKD_LIB}/forkd-agent`, mode: 0o755, source: opts.agentPath },
    { guestPath: `${FORKD_LIB}/py-worker.py`, mode: 0o644, source: opts.pythonWorkerPath },
    { guestPath: `${FORKD_LIB}/init2`, mode: 0o755, source: Buffer.from(INIT_STAGE2) },
    { guestPath: `${FORKD_LIB}/agent-run`, mode: 0o755, source: Buffer.from(AGENT_RUN) },
    { guestPath: '/etc/inittab', mode: 0o644, source: Buffer.from(INITTAB) },
  ];
  if (opts.runtimes.includes('node')) {
    const worker = jsWorkerBundlePath();
    await readFile(worker).catch(() => {
      throw new ForkdError('host_error', `JS eval worker bundle ${worker} is missing; run: npm run build`);
    });
    files.push({ guestPath: `${FORKD_LIB}/js-worker.mjs`, mode: 0o644, source: worker }, ...(await nodeRuntimeFiles()));
  }
  return files;
}

/** Busybox applet names, to create /bin/<applet> symlinks in the initramfs. */
export async function busyboxApplets(): Promise<string[]> {
  const { stdout } = await run(HOST_BUSYBOX, ['--list']);
  return stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => /^[a-z0-9_.[-]+$/.test(s));
}
