// Temp names that say which process made them: `.<kind>-<pid>_<starttime>-<nonce>` (pid and
// start time name a process even after its pid is reused; see proc-stat.ts). A process killed
// with SIGKILL removes none of its temp files; whoever comes next removes those whose creator
// is gone and leaves those of live processes (a `forkd unpack` running beside the daemon).
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { identityAlive, selfIdentity } from './proc-stat.js';

const TEMP_KINDS = ['unpack', 'recv', 'serve', 'pull', 'push'] as const;
export type TempKind = (typeof TEMP_KINDS)[number];

/**
 * `.<kind>-<pid>_<starttime>-<nonce>`: a temp name that says which process made it. (Found by
 * the fault suite: a daemon killed during a PUT .../pack left its .recv-* pack and .unpack-*
 * dir in snapshots/ for good, nothing could tell them from those of a live CLI.)
 */
export async function ownedTempName(kind: TempKind): Promise<string> {
  const [pid, start] = (await selfIdentity()).split(':');
  return `.${kind}-${pid}_${start}-${randomBytes(6).toString('hex')}`;
}

// Also the partial file packToFile writes beside its output (`.` + the name + `.partial-*`).
const OWNED = new RegExp(`^\\.{1,2}(?:${TEMP_KINDS.join('|')})-(\\d+)_(\\d+)-[0-9a-f]+`);

/** Removes the temp entries in `dir` whose creator is gone; returns their names. */
export async function removeAbandonedTempPaths(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    // the dir does not exist (yet): nothing abandoned in it
    const m = OWNED.exec(name);
    if (!m || (await identityAlive(`${m[1]}:${m[2]}`))) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
