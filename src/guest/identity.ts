// `identity`: what makes a restored child itself and not a copy of its siblings. Order
// matters: entropy and a CRNG reseed first (anything random after this differs per child),
// then the clock (the snapshot's clock may be minutes old), then the hostname.
import { writeFile } from 'node:fs/promises';
import type { ParamsOf } from '../protocol/index.js';
import { fsError } from './errors.js';
import type { GuestCtl } from './guestctl.js';

export interface IdentityPaths {
  /** /proc/sys/kernel/hostname in a guest; a temp file in tests. */
  hostnameFile: string;
}

export async function applyIdentity(
  p: ParamsOf<'identity'>,
  ctl: GuestCtl,
  paths: IdentityPaths,
): Promise<{ clockStepMs: number }> {
  const before = Date.now();
  // Entropy + reseed, then the clock, in one round trip to the resident helper; the hostname
  // (no randomness involved) is written meanwhile.
  const entropyHex = Buffer.from(p.entropy, 'base64').toString('hex');
  await Promise.all([
    ctl.call(`identity ${entropyHex} ${Math.round(p.wallClockMs)}`),
    writeFile(paths.hostnameFile, p.hostname).catch((err: unknown) => {
      throw fsError(err, `identity: writing hostname to ${paths.hostnameFile}`);
    }),
  ]);
  return { clockStepMs: before - p.wallClockMs };
}
