// One cgroup per sandbox, `forkd/<sandbox id>` under each controller's hierarchy, holding the
// sandbox's QEMU process: memory, CPU and PID limits, and the OOM-kill record.
// Layouts (see cgroups-detect.ts): v1 has one directory per controller mount
// (/sys/fs/cgroup/memory/forkd/sb-..., /sys/fs/cgroup/cpu/forkd/sb-..., ...); v2 has one
// directory with the controllers enabled in its parent's cgroup.subtree_control. A hybrid host
// uses whichever hierarchy holds each controller.
//
// What the memory limit bounds: QEMU maps the snapshot's memory.bin MAP_PRIVATE. A guest page
// the child only reads is a page-cache page of memory.bin, charged to the cgroup that first
// faulted it in (usually the parent's, at snapshot time: then no child pays for it); a page
// the child writes becomes a private anonymous copy charged to the child. So the limit bounds
// the child's *divergence* from its snapshot (plus QEMU's own heap and TCG buffers), not its
// guest RAM size. With no swap (memory.swap.max 0 / memsw = limit) going over it is an OOM kill.
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ForkdError, errnoOf, messageOf } from '../lib/errors.js';
import { assertSandboxId } from '../lib/ids.js';
import { exists } from '../lib/fsutil.js';
import { LIMIT_RANGES } from '../lib/contract.js';
import { detectCgroups, type CgroupInfo, type LimitController } from './cgroups-detect.js';

/** The directory under each hierarchy that holds every sandbox's cgroup. */
export const CGROUP_PARENT = 'forkd';
export const CPU_PERIOD_US = 100_000;
// The ranges are part of the wire contract (src/lib/limits.ts); re-exported for host's importers.
export { LIMIT_RANGES };

export interface CgroupLimits {
  memoryMiB?: number;
  /** Fraction of CPUs: 0.5 = half of one CPU, 2 = two CPUs. */
  cpuLimit?: number;
  pidsLimit?: number;
}

export interface CgroupDir {
  path: string;
  version: 'v1' | 'v2';
  controllers: LimitController[];
}

export interface CgroupWrite {
  file: string;
  value: string;
  /** Written only when the file exists (e.g. memory.swap.max without swap accounting). */
  optional?: boolean;
}

export interface CgroupPlan {
  /** `forkd` directories to create first. */
  parents: string[];
  /** v2 only: `cgroup.subtree_control` files to enable the controllers in (root first). */
  enable: { file: string; value: string }[];
  dirs: CgroupDir[];
  writes: CgroupWrite[];
}

/** Check limit values before anything touches the host; messages name the value and range. */
export function validateLimits(limits: CgroupLimits): CgroupLimits {
  const check = (name: keyof CgroupLimits, integer: boolean): void => {
    const value = limits[name];
    if (value === undefined) return;
    const { min, max } = LIMIT_RANGES[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
      throw new ForkdError(
        'invalid_argument',
        `${name} must be ${integer ? 'an integer' : 'a number'}, got ${String(value)}`,
      );
    }
    if (value < min || value > max) {
      throw new ForkdError('invalid_argument', `${name} ${value} is out of range ${min}..${max}`);
    }
  };
  check('memoryMiB', true);
  check('cpuLimit', false);
  check('pidsLimit', true);
  return limits;
}

/** cfs quota in microseconds per CPU_PERIOD_US for a fraction of CPUs. */
export function cpuQuotaUs(cpuLimit: number): number {
  return Math.max(1000, Math.round(cpuLimit * CPU_PERIOD_US));
}

/** The directories and file writes for sandbox `id` on this host's layout (pure). */
export function cgroupPlan(info: CgroupInfo, id: string, limits: CgroupLimits): CgroupPlan {
  assertSandboxId(id);
  validateLimits(limits);
  const wanted: Record<LimitController, boolean> = {
    memory: limits.memoryMiB !== undefined,
    cpu: limits.cpuLimit !== undefined,
    pids: limits.pidsLimit !== undefined,
  };
  const dirs = new Map<string, CgroupDir>();
  const parents = new Set<string>();
  const enable: { file: string; value: string }[] = [];
  const v2Controllers: LimitController[] = [];
  for (const c of ['memory', 'cpu', 'pids'] as const) {
    const where = info.controllers[c];
    if (where === undefined) {
      if (wanted[c]) {
        throw new ForkdError(
          'host_error',
          `a ${c} limit was asked for but this host has no ${c} cgroup controller (cgroup mode ${info.mode}); run forkd doctor`,
        );
      }
      continue;
    }
    const root = where === 'v2' ? info.v2Root : info.v1Mounts[c];
    if (root === undefined) continue;
    if (where === 'v2') v2Controllers.push(c);
    const path = join(root, CGROUP_PARENT, id);
    parents.add(join(root, CGROUP_PARENT));
    const dir = dirs.get(path) ?? { path, version: where, controllers: [] };
    dir.controllers.push(c);
    dirs.set(path, dir);
  }
  if (v2Controllers.length > 0 && info.v2Root !== undefined) {
    const value = v2Controllers.map((c) => `+${c}`).join(' ');
    enable.push({ file: join(info.v2Root, 'cgroup.subtree_control'), value });
    enable.push({ file: join(info.v2Root, CGROUP_PARENT, 'cgroup.subtree_control'), value });
  }
  const writes: CgroupWrite[] = [];
  const dirOf = (c: LimitController): CgroupDir | undefined =>
    [...dirs.values()].find((d) => d.controllers.includes(c));
  const mem = dirOf('memory');
  if (mem && limits.memoryMiB !== undefined) {
    const bytes = String(limits.memoryMiB * 1024 * 1024);
    if (mem.version === 'v2') {
      writes.push({ file: join(mem.path, 'memory.max'), value: bytes });
      // No swapping out of the limit; and an OOM kill takes the whole cgroup (QEMU is one process).
      writes.push({ file: join(mem.path, 'memory.swap.max'), value: '0', optional: true });
      writes.push({ file: join(mem.path, 'memory.oom.group'), value: '1', optional: true });
    } else {
      writes.push({ file: join(mem.path, 'memory.limit_in_bytes'), value: bytes });
      // memory+swap = memory: the v1 spelling of "no swap" (present with swap accounting only).
      writes.push({ file: join(mem.path, 'memory.memsw.limit_in_bytes'), value: bytes, optional: true });
    }
  }
  const cpu = dirOf('cpu');
  if (cpu && limits.cpuLimit !== undefined) {
    const quota = cpuQuotaUs(limits.cpuLimit);
    if (cpu.version === 'v2') {
      writes.push({ file: join(cpu.path, 'cpu.max'), value: `${quota} ${CPU_PERIOD_US}` });
    } else {
      writes.push({ file: join(cpu.path, 'cpu.cfs_period_us'), value: String(CPU_PERIOD_US) });
      writes.push({ file: join(cpu.path, 'cpu.cfs_quota_us'), value: String(quota) });
    }
  }
  const pids = dirOf('pids');
  if (pids && limits.pidsLimit !== undefined) {
    writes.push({ file: join(pids.path, 'pids.max'), value: String(limits.pidsLimit) });
  }
  return { parents: [...parents], enable, dirs: [...dirs.values()], writes };
}

/**
 * OOM kills recorded in a memory cgroup. v2 `memory.events` and v1 `memory.oom_control`
 * both carry an `oom_kill N` line:
 *   v2: "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n"
 *   v1: "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"
 */
export function parseOomKills(text: string): number {
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

async function writeCgroupFile(file: string, value: string): Promise<void> {
  try {
    await writeFile(file, value);
  } catch (error) {
    throw new ForkdError('host_error', `cannot write "${value}" to ${file}: ${errnoOf(error) ?? messageOf(error)}`, {
      cause: error,
    });
  }
}

const RMDIR_RETRY_MS = 3000;

export class SandboxCgroup {
  #finalOom: boolean | undefined;
  #disposed: Promise<void> | undefined;

  private constructor(
    readonly id: string,
    readonly dirs: readonly CgroupDir[],
  ) {}

  /** The cgroup of sandbox `id` whether or not it exists (to dispose one after a restart). */
  static async forId(id: string, info?: CgroupInfo): Promise<SandboxCgroup> {
    return new SandboxCgroup(id, cgroupPlan(info ?? (await detectCgroups()), id, {}).dirs);
  }

  /** Create (or re-apply limits to) the sandbox's cgroup. Idempotent; on failure removes what it made. */
  static async create(id: string, limits: CgroupLimits, info?: CgroupInfo): Promise<SandboxCgroup> {
    const plan = cgroupPlan(info ?? (await detectCgroups()), id, limits);
    if (plan.dirs.length === 0) {
      throw new ForkdError('host_error', 'this host has no memory, cpu or pids cgroup controller; run forkd doctor');
    }
    const cgroup = new SandboxCgroup(id, plan.dirs);
    try {
      for (const parent of plan.parents) await mkdir(parent, { recursive: true });
      for (const { file, value } of plan.enable) await writeCgroupFile(file, value);
      for (const dir of plan.dirs) {
        await mkdir(dir.path).catch((error: unknown) => {
          if (errnoOf(error) === 'EEXIST') return;
          throw new ForkdError(
            'host_error',
            `cannot create cgroup ${dir.path}: ${errnoOf(error) ?? messageOf(error)}`,
            {
              cause: error,
            },
          );
        });
      }
      for (const w of plan.writes) {
        if (w.optional && !(await exists(w.file))) continue;
        await writeCgroupFile(w.file, w.value);
      }
    } catch (error) {
      // The creation error is the answer; a cleanup failure would leave a cgroup behind, so it is added to it.
      const left = await cgroup.dispose().then(
        () => undefined,
        (cleanup: unknown) => messageOf(cleanup),
      );
      if (left === undefined) throw error;
      throw new ForkdError('host_error', `${messageOf(error)} (and ${left})`, { cause: error });
    }
    return cgroup;
  }

  get memoryDir(): string | undefined {
    return this.dirs.find((d) => d.controllers.includes('memory'))?.path;
  }

  dirOf(controller: LimitController): string | undefined {
    return this.dirs.find((d) => d.controllers.includes(controller))?.path;
  }

  /** Move a process (all its threads) into every directory of the cgroup. */
  async addProcess(pid: number): Promise<void> {
    for (const dir of this.dirs) await writeCgroupFile(join(dir.path, 'cgroup.procs'), String(pid));
  }

  /** Whether the kernel OOM-killed a process of this cgroup. Still answers after dispose(). */
  async oomKilled(): Promise<boolean> {
    if (this.#finalOom !== undefined) return this.#finalOom;
    const dir = this.dirs.find((d) => d.controllers.includes('memory'));
    if (!dir) return false;
    const file = join(dir.path, dir.version === 'v2' ? 'memory.events' : 'memory.oom_control');
    try {
      return parseOomKills(await readFile(file, 'utf8')) > 0;
    } catch {
      return false; // no cgroup dir (never made, or removed): it holds no OOM record
    }
  }

  /**
   * Remove the directories. Kills and moves nothing: call it once the process has exited.
   * A cgroup whose last task just exited can still be busy for a moment, so EBUSY is retried
   * briefly. Idempotent.
   */
  dispose(): Promise<void> {
    this.#disposed ??= (async () => {
      this.#finalOom = await this.oomKilled();
      const errors: string[] = [];
      for (const dir of this.dirs) {
        const error = await rmdirWithRetry(dir.path);
        if (error) errors.push(error);
      }
      if (errors.length > 0) {
        this.#disposed = undefined; // a later call may succeed once the tasks are gone
        throw new ForkdError('host_error', `cannot remove cgroup of ${this.id}: ${errors.join('; ')}`);
      }
    })();
    return this.#disposed;
  }
}

async function rmdirWithRetry(path: string): Promise<string | undefined> {
  const deadline = Date.now() + RMDIR_RETRY_MS;
  for (;;) {
    try {
      await rmdir(path);
      return undefined;
    } catch (error) {
      const code = errnoOf(error);
      if (code === 'ENOENT') return undefined;
      if (code !== 'EBUSY' || Date.now() > deadline) {
        const tasks = await readFile(join(path, 'cgroup.procs'), 'utf8').catch(() => ''); // only decorates the message
        const pids = tasks.trim().split('\n').filter(Boolean).join(',');
        return `${path}: ${code ?? messageOf(error)}${pids ? ` (still holds pids ${pids})` : ''}`;
      }
      await sleep(50);
    }
  }
}
