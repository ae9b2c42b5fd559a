// The leak check every suite ends with: no QEMU process, run dir, staging dir, network
// namespace, cgroup, tap, bridge, address claim or host nftables table of ours left behind.
// (A sandbox's tap and its own nftables table live in its namespace and go with it.)
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TEST_DATA_DIR } from './env.js';

const pexec = promisify(execFile);

export async function ourQemuProcesses(dataDir = TEST_DATA_DIR): Promise<{ pid: number; cmdline: string }[]> {
  const out: { pid: number; cmdline: string }[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8')).replace(/\0/g, ' ');
      if (cmdline.includes('qemu-system') && cmdline.includes(dataDir))
        out.push({ pid: Number(name), cmdline: cmdline.slice(0, 200) });
    } catch {
      /* process ended while we looked */
    }
  }
  return out;
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/**
 * A daemon's or doctor's start-up probe namespace (`forkd-probe-<pid>`, `forkd-capprobe-<pid>`)
 * is a leak once its process is gone; while it lives, the probe is under way (the host lane of
 * scripts/run-tests.mjs starts daemons while guest suites run their leak checks).
 */
export function deadProbe(ns: string): boolean {
  const pid = /^forkd-(?:cap)?probe-(\d+)$/.exec(ns)?.[1];
  if (pid === undefined) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * `dataDirOnly`: only what lives under `dataDir` (its QEMUs, run, staging and build dirs), for
 * suites of the host lane (scripts/run-tests.mjs), which boot no guest and so can make nothing
 * host-wide, while a guest suite beside them may own namespaces and cgroups of its own.
 */
/** Probe namespaces whose process is gone: each was left behind. */
export async function leakedProbeNamespaces(): Promise<string[]> {
  return (await list('/run/netns')).filter(deadProbe);
}

export async function findLeaks(dataDir = TEST_DATA_DIR, opts: { dataDirOnly?: boolean } = {}): Promise<string[]> {
  const leaks: string[] = [];
  for (const p of await ourQemuProcesses(dataDir)) leaks.push(`qemu process ${p.pid}: ${p.cmdline}`);
  for (const d of await list(join(dataDir, 'run'))) leaks.push(`run dir ${join(dataDir, 'run', d)}`);
  for (const d of await list(join(dataDir, 'snapshots'))) if (d.startsWith('.')) leaks.push(`staging/trash dir ${d}`);
  for (const d of await list(join(dataDir, 'images'))) if (d.startsWith('.')) leaks.push(`image build dir ${d}`);
  if (opts.dataDirOnly === true) return leaks;
  for (const ns of await list('/run/netns')) if (ns.startsWith('fk-') || deadProbe(ns)) leaks.push(`netns ${ns}`);
  for (const ctl of ['memory', 'cpu', 'pids', 'unified', '']) {
    for (const cg of await list(join('/sys/fs/cgroup', ctl, 'forkd')))
      if (cg.startsWith('sb-')) leaks.push(`cgroup ${ctl}/forkd/${cg}`);
  }
  // Bridge-address claims of sandbox namespaces (src/host/net-addr.ts) and the host's table.
  for (const ns of await list('/run/forkd/net/ns')) leaks.push(`bridge address claim of ${ns}`);
  for (const a of await list('/run/forkd/net/addr')) leaks.push(`bridge address claim ${a}`);
  try {
    const { stdout } = await pexec('nft', ['list', 'tables']);
    if (/^table inet forkd$/m.test(stdout)) leaks.push('nftables table inet forkd on the host');
  } catch {
    /* no nftables */
  }
  try {
    const { stdout } = await pexec('ip', ['-o', 'link', 'show']);
    for (const line of stdout.split('\n')) {
      const name = /^\d+:\s+([^:@]+)/.exec(line)?.[1];
      if (name && /^(fk|forkd)[-_]/.test(name)) leaks.push(`link ${name}`);
    }
  } catch {
    /* no iproute2: nothing of ours can exist either */
  }
  return leaks;
}
