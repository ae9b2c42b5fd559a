// Temp files and dirs a pack operation is working in (.unpack-*, .recv-*, .serve-*, .pull-*,
// .push-*). Each is removed by its own `finally`; this registry lets the CLI's SIGINT/SIGTERM
// handler remove them too, since the process exits before those `finally` blocks run.
// A process killed with SIGKILL runs neither: its names carry its identity (pid and start
// time, see src/host/owned-temp.ts), so the next daemon can tell an abandoned one from one a
// live `forkd unpack` or `forkd pull` on the same data dir is still writing.
import { rm } from 'node:fs/promises';

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

export { ownedTempName, removeAbandonedTempPaths, type TempKind } from '../host/owned-temp.js';
