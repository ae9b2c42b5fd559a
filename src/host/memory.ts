// Memory accounting from /proc: PSS of a process (its fair share of shared pages, which is
// what copy-on-write children really cost) and the host's available memory.
import { readFile } from 'node:fs/promises';

/** Parse a "Key:   123 kB" field from /proc text into bytes. */
export function parseKbField(text: string, key: string): number | undefined {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return match ? Number(match[1]) * 1024 : undefined;
}

export async function processPss(pid: number): Promise<number | undefined> {
  try {
    return parseKbField(await readFile(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
  } catch {
    return undefined; // the process exited (or is not ours to read): no figure
  }
}

export async function processRss(pid: number): Promise<number | undefined> {
  try {
    return parseKbField(await readFile(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Rss');
  } catch {
    return undefined; // the process exited (or is not ours to read): no figure
  }
}

export async function hostAvailableBytes(): Promise<number> {
  return parseKbField(await readFile('/proc/meminfo', 'utf8'), 'MemAvailable') ?? 0;
}
