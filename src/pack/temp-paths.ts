// Temp files and dirs a pack operation is working in (.unpack-*, .pull-*, .push-*). Each is
// removed by its own `finally`; this registry lets the CLI's SIGINT/SIGTERM handler remove them
// too, since the process exits before those `finally` blocks run.
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
