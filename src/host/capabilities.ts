// Which isolation features this host *and this process's privileges* allow, probed once at
// start-up: the effective capability set (CapEff in /proc/self/status), whether each limit
// controller's cgroup hierarchy is writable (a real mkdir + rmdir under its forkd/ dir),
// whether a network namespace can be made and configured (`ip netns add`, `ip link` and
// `nft` inside it: needs CAP_SYS_ADMIN for the namespace and its bind mount, CAP_NET_ADMIN
// for links and rules). A daemon run with too small a capability bounding set (the systemd
// unit, a Kubernetes securityContext) then refuses a spawn that asks for a missing feature
// with `feature_unavailable` instead of failing half-way through with a 500.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { errnoOf, ForkdError, messageOf } from '../lib/errors.js';
import { CGROUP_PARENT } from './cgroups.js';
import { detectCgroups, type CgroupInfo, type LimitController } from './cgroups-detect.js';
import { findSystemTool } from './netns-detect.js';

const execFileAsync = promisify(execFile);
const PROBE_TIMEOUT_MS = 10_000;

/** capability(7) numbers, as the kernel's include/uapi/linux/capability.h has them. */
export const CAPABILITY_NAMES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/**
 * What each feature needs beyond root's file access, and why. The systemd unit's
 * CapabilityBoundingSet and the Kubernetes securityContext are checked against this list.
 */
export const FEATURE_CAPABILITIES = {
  /** Start QEMU as the VM user; chown run dirs and memory.bin to it; reach and signal its processes. */
  sandboxes: ['CAP_SETUID', 'CAP_SETGID', 'CAP_CHOWN', 'CAP_FOWNER', 'CAP_DAC_OVERRIDE', 'CAP_KILL'],
  /** mkdir/write in the cgroup hierarchies is plain file access for root: no extra capability. */
  cgroup_limits: [],
  /** `ip netns add` (unshare + bind mount: SYS_ADMIN), nsenter (setns: SYS_ADMIN), veth/tap/bridge/nft (NET_ADMIN). */
  per_child_netns: ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN'],
} as const satisfies Record<string, readonly string[]>;

export type Feature = 'memory_limit' | 'cpu_limit' | 'pids_limit' | 'per_child_netns';
export const FEATURES: readonly Feature[] = ['memory_limit', 'cpu_limit', 'pids_limit', 'per_child_netns'];

export interface FeatureStatus {
  available: boolean;
  /** Why not (or a caveat); null when available without one. */
  reason: string | null;
}

export interface HostCapabilities {
  /** Effective capabilities of the daemon process, by name. */
  effective: string[];
  /** Capabilities some feature needs that the daemon does not have. */
  missing: string[];
  /** Whether the process runs as root (uid 0): without it there is no isolation at all. */
  root: boolean;
  cgroupMode: CgroupInfo['mode'];
  features: Record<Feature, FeatureStatus>;
  probedAt: string;
}

/** Names of the capabilities set in a CapEff/CapBnd hex mask ("000001ffffffffff"). */
export function parseCapMask(hex: string): string[] {
  const mask = BigInt(`0x${hex.trim() || '0'}`);
  const out: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((mask >> BigInt(bit)) & 1n) out.push(CAPABILITY_NAMES[bit] ?? `CAP_${bit}`);
  }
  return out;
}

/** The CapEff line of /proc/<pid>/status text, as capability names. */
export function effectiveFromStatus(status: string): string[] {
  const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(status);
  return m ? parseCapMask(m[1]!) : [];
}

const LIMIT_OF: Record<Exclude<Feature, 'per_child_netns'>, LimitController> = {
  memory_limit: 'memory',
  cpu_limit: 'cpu',
  pids_limit: 'pids',
};

/** Create and remove `forkd/.probe-*` in the controller's hierarchy: writable for real, or why not. */
async function probeCgroupWrite(info: CgroupInfo, c: LimitController): Promise<string | undefined> {
  const where = info.controllers[c];
  const root = where === 'v2' ? info.v2Root : where === 'v1' ? info.v1Mounts[c] : undefined;
  if (root === undefined) return `this host has no ${c} cgroup controller (cgroup mode ${info.mode})`;
  const parent = join(root, CGROUP_PARENT);
  const probe = join(parent, `.probe-${process.pid}-${randomBytes(3).toString('hex')}`);
  try {
    await mkdir(parent, { recursive: true });
    await mkdir(probe);
  } catch (error) {
    return `the ${c} cgroup hierarchy ${root} is not writable by the daemon (${errnoOf(error) ?? messageOf(error)}): mount /sys/fs/cgroup read-write (systemd: ProtectControlGroups=no; Kubernetes: a writable /sys/fs/cgroup hostPath)`;
  }
  await rmdir(probe).catch(() => undefined); // the probe dir may not exist (mkdir failed above) or be gone; nothing else uses the name
  return undefined;
}

async function run(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    await execFileAsync(cmd, args, { timeout: PROBE_TIMEOUT_MS, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    return undefined;
  } catch (error) {
    const stderr = (error as { stderr?: unknown }).stderr;
    const text = typeof stderr === 'string' && stderr.trim() !== '' ? stderr.trim().split('\n')[0]! : messageOf(error);
    return `${[cmd.split('/').pop(), ...args].join(' ')}: ${text}`;
  }
}

/**
 * A throwaway namespace, a link brought up inside it and an nftables listing inside it: what
 * a networked sandbox's set-up does, minus the veth and the host bridge. Removed afterwards.
 */
async function probeNetwork(effective: readonly string[]): Promise<string | undefined> {
  const lacking = FEATURE_CAPABILITIES.per_child_netns.filter((c) => !effective.includes(c));
  if (lacking.length > 0)
    return `this process lacks ${lacking.join(' and ')} (sandbox namespaces, veth/tap links and nftables rules need them): add ${lacking.join(', ')} to its capability bounding set`;
  const [ip, nft, nsenter] = await Promise.all(['ip', 'nft', 'nsenter'].map((t) => findSystemTool(t)));
  if (ip === undefined) return 'ip (iproute2) not found; install iproute2';
  if (nft === undefined) return 'nft not found; install nftables';
  if (nsenter === undefined) return 'nsenter not found; install util-linux';
  const name = `forkd-capprobe-${process.pid}`;
  try {
    const steps: [string, string[]][] = [
      [ip, ['netns', 'add', name]],
      [ip, ['-n', name, 'link', 'set', 'lo', 'up']],
      [nsenter, [`--net=/run/netns/${name}`, '--', nft, 'list', 'tables']],
    ];
    for (const [cmd, args] of steps) {
      const problem = await run(cmd, args);
      if (problem) return problem;
    }
    return undefined;
  } finally {
    await run(ip, ['netns', 'delete', name]);
  }
}

/** Probe everything once (a few ms and four short processes). */
export async function probeHostCapabilities(opts: { root?: boolean } = {}): Promise<HostCapabilities> {
  const root = opts.root ?? process.getuid?.() === 0;
  const effective = effectiveFromStatus(await readFile('/proc/self/status', 'utf8').catch(() => '')); // no /proc: no capability known, every feature reported missing with its reason
  const info = await detectCgroups();
  const features = {} as Record<Feature, FeatureStatus>;
  const notRoot = 'the daemon is not root: sandboxes get no cgroup or namespace of their own';
  const cgroupProblem = {} as Record<LimitController, string | undefined>;
  for (const f of ['memory_limit', 'cpu_limit', 'pids_limit'] as const) {
    const problem = root ? await probeCgroupWrite(info, LIMIT_OF[f]) : notRoot;
    cgroupProblem[LIMIT_OF[f]] = problem;
    features[f] = { available: problem === undefined, reason: problem ?? null };
  }
  // Any isolated sandbox gets its own cgroup under every controller the host has (isolation.ts),
  // so a namespace also needs those hierarchies writable.
  const present = (['memory', 'cpu', 'pids'] as const).filter((c) => info.controllers[c] !== undefined);
  const cgroupBlock = present.map((c) => cgroupProblem[c]).find((p) => p !== undefined);
  const net = !root
    ? notRoot
    : ((await probeNetwork(effective)) ??
      (cgroupBlock === undefined ? undefined : `a networked sandbox gets its own cgroup too, and ${cgroupBlock}`));
  features.per_child_netns = { available: net === undefined, reason: net ?? null };
  const needed = new Set<string>([...FEATURE_CAPABILITIES.sandboxes, ...FEATURE_CAPABILITIES.per_child_netns]);
  return {
    effective,
    missing: [...needed].filter((c) => !effective.includes(c)),
    root,
    cgroupMode: info.mode,
    features,
    probedAt: new Date().toISOString(),
  };
}

/** The features a spawn asks for (the validated isolation options' shape). */
export function featuresAsked(opts: {
  memoryMiB?: number | undefined;
  cpuLimit?: number | undefined;
  pidsLimit?: number | undefined;
  network?: unknown;
}): Feature[] {
  const out: Feature[] = [];
  if (opts.memoryMiB !== undefined) out.push('memory_limit');
  if (opts.cpuLimit !== undefined) out.push('cpu_limit');
  if (opts.pidsLimit !== undefined) out.push('pids_limit');
  if (opts.network !== undefined) out.push('per_child_netns');
  return out;
}

/**
 * Refuse a spawn asking for a feature the start-up probe found unavailable: 503
 * `feature_unavailable`, naming the feature, the reason and the fix; details carry the list.
 */
export function assertFeatures(asked: readonly Feature[], caps: HostCapabilities | undefined): void {
  if (!caps) return;
  const missing = asked.filter((f) => !caps.features[f].available);
  if (missing.length === 0) return;
  const why = missing.map((f) => `${f}: ${caps.features[f].reason ?? 'unavailable'}`).join('; ');
  throw new ForkdError(
    'feature_unavailable',
    `this daemon cannot provide ${missing.join(', ')} (${why}); see GET /v1/capabilities, or spawn without it`,
    { details: { features: missing } },
  );
}

/** `forkd doctor`'s line: which isolation features this process's privileges allow. */
export async function capabilitiesOutcome(): Promise<{ status: 'pass' | 'warn'; detail: string; hint?: string }> {
  const caps = await probeHostCapabilities();
  const off = FEATURES.filter((f) => !caps.features[f].available);
  if (off.length === 0) return { status: 'pass', detail: `${FEATURES.join(', ')} available` };
  return {
    status: 'warn',
    detail: `unavailable: ${off.map((f) => `${f} (${caps.features[f].reason ?? '?'})`).join('; ')}`,
    hint: caps.missing.length > 0 ? `grant ${caps.missing.join(', ')}` : 'run as root on a host with writable cgroups',
  };
}
