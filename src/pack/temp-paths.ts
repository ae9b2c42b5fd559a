// Temp files and dirs a pack operation is working in (.unpack-*, .recv-*, .serve-*, .pull-*,
// .push-*). Each is removed by its own `finally`; this registry lets the CLI's SIGINT/SIGTERM
// handler remove them too, since the process exits before those `finally` blocks run.
// A process killed with SIGKILL runs neither: its names carry its identity (pid and start
// time, see ownedTempName), so the next daemon can tell an abandoned one from one a live
// `forkd unpack` or `forkd pull` on the same data dir is still writing (removeAbandonedTempPaths).
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { identityAlive, selfIdentity } from '../host/proc-stat.js';

const active = new Set<string>();

/** Register a temp path; returns the function that forgets it. */
export function trackTempPath(path: string): () => void {
  active.add(path);
  return () => active.delete(path);
}

export async function removeTrackedTempPaths(): Promise<void> {
  const paths = [...active];
  active.clear();
  // Best effort on the way out (Ctrl-C): what stays is a dot-named dir that no listing shows.
  await Promise.all(paths.map((p) => rm(p, { recursive: true, force: true }).catch(() => undefined)));
}

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
    const m = OWNED.exec(name);
    if (!m || (await identityAlive(`${m[1]}:${m[2]}`))) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
