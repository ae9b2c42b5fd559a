// Finding QEMU processes the daemon may not have started itself (re-adopted after a restart,
// or orphans of a daemon that died) by their command line. Stopping them is src/vmm's job
// (`AdoptedQemu`): nothing here sends a signal.
import { readdir, readFile } from 'node:fs/promises';
import { processAlive } from '../../host/proc-stat.js';

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
