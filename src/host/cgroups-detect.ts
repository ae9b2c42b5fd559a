// Which cgroup hierarchy this host has and where the controllers forkd limits live.
// Three layouts exist in the wild:
//   v2 (unified): `cgroup2 /sys/fs/cgroup cgroup2 rw,...` and /sys/fs/cgroup/cgroup.controllers
//   v1: one `cgroup` mount per controller (or co-mounted, e.g. `cpu,cpuacct`) under a tmpfs
//   hybrid: v1 controller mounts plus a cgroup2 at /sys/fs/cgroup/unified, e.g. this machine:
//     cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
//     cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
//     cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
// A controller is bound to at most one hierarchy, so each one is either v1 or v2.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export type CgroupMode = 'v2' | 'v1' | 'hybrid' | 'none';
export type LimitController = 'memory' | 'cpu' | 'pids';

export interface CgroupInfo {
  mode: CgroupMode;
  /** Where each controller forkd needs is available; undefined when nowhere. */
  controllers: Record<LimitController, 'v1' | 'v2' | undefined>;
  /** v1 controller (or `name=systemd`) -> mount point. */
  v1Mounts: Record<string, string>;
  /** Mount point of the cgroup2 hierarchy, when there is one. */
  v2Root?: string;
}

const LIMIT_CONTROLLERS: readonly LimitController[] = ['memory', 'cpu', 'pids'];

// Options in a v1 mount line that name a controller (the rest are rw, relatime, ...).
const V1_CONTROLLERS = new Set([
  'cpu',
  'cpuacct',
  'cpuset',
  'memory',
  'devices',
  'freezer',
  'net_cls',
  'net_prio',
  'blkio',
  'perf_event',
  'hugetlb',
  'pids',
  'rdma',
  'misc',
]);

/** /proc/mounts escapes space, tab, newline and backslash in paths as octal (`\040`). */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Parse /proc/mounts text. `v2Controllers` is the content of `<v2Root>/cgroup.controllers`
 * (space-separated, e.g. "cpuset cpu io memory hugetlb pids rdma misc"); pass undefined when
 * there is no cgroup2 mount or it could not be read.
 */
export function parseCgroupMounts(mounts: string, v2Controllers?: string): CgroupInfo {
  const v1Mounts: Record<string, string> = {};
  let v2Root: string | undefined;
  for (const line of mounts.split('\n')) {
    const [, rawPath, fstype, options] = line.trim().split(/\s+/);
    if (rawPath === undefined || options === undefined) continue;
    const path = unescapeMountPath(rawPath);
    if (fstype === 'cgroup2') {
      v2Root ??= path;
    } else if (fstype === 'cgroup') {
      for (const opt of options.split(',')) {
        if (V1_CONTROLLERS.has(opt) || opt.startsWith('name=')) v1Mounts[opt] ??= path;
      }
    }
  }
  const inV2 = new Set((v2Controllers ?? '').split(/\s+/).filter((c) => c !== ''));
  const controllers = {} as Record<LimitController, 'v1' | 'v2' | undefined>;
  for (const c of LIMIT_CONTROLLERS) {
    controllers[c] = v2Root !== undefined && inV2.has(c) ? 'v2' : v1Mounts[c] !== undefined ? 'v1' : undefined;
  }
  const hasV1 = Object.keys(v1Mounts).length > 0;
  const mode: CgroupMode = hasV1 && v2Root !== undefined ? 'hybrid' : hasV1 ? 'v1' : v2Root ? 'v2' : 'none';
  const info: CgroupInfo = { mode, controllers, v1Mounts };
  if (v2Root !== undefined) info.v2Root = v2Root;
  return info;
}

/** Read /proc/mounts and the cgroup2 root's controller list. */
export async function detectCgroups(): Promise<CgroupInfo> {
  // Unreadable: no cgroup mounts found, which `forkd doctor` reports as missing controllers.
  const mounts = await readFile('/proc/mounts', 'utf8').catch(() => '');
  const { v2Root } = parseCgroupMounts(mounts);
  // Likewise an unreadable cgroup.controllers: the v2 hierarchy then offers no controllers.
  const v2Controllers =
    v2Root === undefined
      ? undefined
      : await readFile(join(v2Root, 'cgroup.controllers'), 'utf8').catch(() => undefined);
  return parseCgroupMounts(mounts, v2Controllers);
}

/** Controllers forkd limits with that this host lacks. */
export function missingControllers(info: CgroupInfo): LimitController[] {
  return LIMIT_CONTROLLERS.filter((c) => info.controllers[c] === undefined);
}
