// Acting on a QEMU process the daemon may not have started itself (re-adopted after a
// restart). Node has no pidfd: liveness is read from /proc/<pid>/stat, and a pid counts as
// ours only while its command line names our run dir (pid reuse must never make us signal a
// stranger).
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { processAlive, processUsesDir } from '../../host/proc-stat.js';

/** Signal a detached QEMU's process group (it leads its own), falling back to the pid. */
export function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  }
}

/** Wait until the pid is gone (or a zombie), polling; false if it is still there at the deadline. */
export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (!(await processAlive(pid))) return true;
    if (Date.now() >= end) return false;
    await sleep(20);
  }
}

/**
 * Stop a QEMU we do not hold as a child: optional graceful step, then SIGTERM, then SIGKILL,
 * each bounded. Re-checks that the pid still runs from `dir` before every signal.
 */
export async function stopForeignQemu(
  pid: number,
  dir: string,
  opts: { graceful?: () => Promise<unknown>; graceMs?: number } = {},
): Promise<void> {
  const graceMs = opts.graceMs ?? 1000;
  if (!(await processUsesDir(pid, dir))) return;
  if (opts.graceful) {
    await Promise.race([opts.graceful().catch(() => undefined), sleep(graceMs)]);
    if (await waitGone(pid, graceMs)) return;
  }
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    if (!(await processUsesDir(pid, dir))) return;
    signalGroup(pid, sig);
    if (await waitGone(pid, sig === 'SIGTERM' ? graceMs : 5000)) return;
  }
}

/** Pids of live processes whose command line contains `needle` (e.g. a staging dir). */
export async function processesUsing(needle: string): Promise<number[]> {
  return [...(await commandLines(needle)).keys()];
}

/** One scan of /proc: the command line (NULs as spaces) of every live process containing `needle`. */
export async function commandLines(needle: string): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
      if (cmdline.includes(needle) && (await processAlive(pid))) out.set(pid, cmdline);
    } catch {
      /* ended while we looked */
    }
  }
  return out;
}
