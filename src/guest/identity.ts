// `identity`: what makes a restored child itself and not a copy of its siblings. Order
// matters: entropy and a CRNG reseed first (anything random after this differs per child),
// then the clock (the snapshot's clock may be minutes old), then the hostname.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import type { ParamsOf } from '../protocol/index.js';
import { errnoOf, fsError, GuestError } from './errors.js';

const HELPER_TIMEOUT_MS = 10_000;

export interface IdentityPaths {
  /** The static helper doing the ioctls and clock_settime (forkd-guestctl.c). */
  guestctl: string;
  /** /proc/sys/kernel/hostname in a guest; a temp file in tests. */
  hostnameFile: string;
}

export async function applyIdentity(p: ParamsOf<'identity'>, paths: IdentityPaths): Promise<{ clockStepMs: number }> {
  await runHelper(paths.guestctl, ['entropy'], Buffer.from(p.entropy, 'base64'));
  const before = Date.now();
  await runHelper(paths.guestctl, ['settime', String(p.wallClockMs)]);
  await writeFile(paths.hostnameFile, p.hostname).catch((err: unknown) => {
    throw fsError(err, `identity: writing hostname to ${paths.hostnameFile}`);
  });
  return { clockStepMs: before - p.wallClockMs };
}

function runHelper(helper: string, args: string[], stdin?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(helper, args, { stdio: ['pipe', 'ignore', 'pipe'], timeout: HELPER_TIMEOUT_MS });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      if (stderr.length < 4096) stderr += s;
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
    child.once('error', (err) => {
      const code = errnoOf(err) === 'ENOENT' ? 'unsupported' : 'internal';
      reject(new GuestError(code, `identity: cannot run ${helper}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      if (code === 0) return resolve();
      reject(
        new GuestError(
          'internal',
          `identity: ${helper} ${args[0]} failed (exit ${code}, signal ${signal}): ${stderr.trim()}`,
        ),
      );
    });
  });
}
