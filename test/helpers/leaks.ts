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

export async function findLeaks(dataDir = TEST_DATA_DIR): Promise<string[]> {
  const leaks: string[] = [];
  for (const p of await ourQemuProcesses(dataDir)) leaks.push(`qemu process ${p.pid}: ${p.cmdline}`);
  for (const d of await list(join(dataDir, 'run'))) leaks.push(`run dir ${join(dataDir, 'run', d)}`);
  for (const d of await list(join(dataDir, 'snapshots'))) if (d.startsWith('.')) leaks.push(`staging/trash dir ${d}`);
  for (const d of await list(join(dataDir, 'images'))) if (d.startsWith('.')) leaks.push(`image build dir ${d}`);
  for (const ns of await list('/run/netns'))
    if (ns.startsWith('fk-') || ns.startsWith('forkd-probe-')) leaks.push(`netns ${ns}`);
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
