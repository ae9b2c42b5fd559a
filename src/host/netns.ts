// One network namespace per sandbox, named from its id (`fk-` + the id's last 12 characters:
// 15 characters, the longest an interface name can be, so the host end of its veth carries the
// same name). Inside:
//   tap0   10.42.0.1/24, owned by the VM user: QEMU attaches the guest NIC (10.42.0.2) to it
//   eth0   10.43.x.y/16, a veth whose host end `fk-...` is a port of the bridge forkd-br0
//   routes default via 10.43.0.1; nftables `inet forkd`: egress policy + NAT (nftables.ts)
// Every child keeps the snapshot's guest MAC and IP: each has its own L2 segment and stack.
// QEMU runs inside as the VM user through `nsenter --net=... --setuid --setgid` (nsenter
// setns()es, drops supplementary groups and ids, then execs QEMU: same pid).
import { access, readdir, readlink, stat } from 'node:fs/promises';
import { ForkdError, messageOf } from '../lib/errors.js';
import { netnsName } from '../lib/ids.js';
import type { Logger } from '../lib/log.js';
import { silentLogger } from '../lib/log.js';
import {
  BRIDGE,
  BRIDGE_ADDRESS,
  BRIDGE_PREFIX,
  ensureHostNetwork,
  linkExists,
  removeHostNetwork,
  writeSysctl,
} from './bridge.js';
import { AddressClaims } from './net-addr.js';
import { execWithInput, inNetns, ipBatch, mustExec, netnsPath, netTools, nftApply } from './net-exec.js';
import { sandboxRuleset, type EgressPolicy } from './nftables.js';

// Derived from the sandbox id in src/lib/ids.ts (the API shows it too); re-exported for host's importers.
export { netnsName };
export const NETNS_PATTERN = /^fk-[a-z2-7]{12}$/;
export const GUEST_TAP = 'tap0';
export const NS_UPLINK = 'eth0';
/** The guest's side, fixed at image build (src/image/guest-init.ts; a unit test keeps them equal). */
export const TAP_ADDRESS = '10.42.0.1';
export const GUEST_CIDR = '10.42.0.0/24';

/** `ip -n NS -batch` lines that build the inside of a namespace (pure; `withTap` when tap0 is missing). */
export function insideBatch(opts: { address: string; uid: number; gid: number; withTap: boolean }): string[] {
  return [
    'link set lo up',
    ...(opts.withTap ? [`tuntap add dev ${GUEST_TAP} mode tap user ${opts.uid} group ${opts.gid}`] : []),
    `addr replace ${TAP_ADDRESS}/24 dev ${GUEST_TAP}`,
    `link set ${GUEST_TAP} up`,
    `addr replace ${opts.address}/${BRIDGE_PREFIX} dev ${NS_UPLINK}`,
    `link set ${NS_UPLINK} up`,
    `route replace default via ${BRIDGE_ADDRESS} dev ${NS_UPLINK}`,
  ];
}

/** Host-side `ip -batch` lines for the veth end `ns`: a bridge port that cannot talk to other ports. */
export function hostPortBatch(ns: string): string[] {
  return [`link set ${ns} master ${BRIDGE}`, `link set dev ${ns} type bridge_slave isolated on`, `link set ${ns} up`];
}

/** argv prefix running a command in namespace `ns` as uid:gid with no supplementary groups. */
export function nsenterWrapper(nsenter: string, ns: string, uid: number, gid: number): string[] {
  return [nsenter, `--net=${netnsPath(ns)}`, '--setuid', String(uid), '--setgid', String(gid), '--'];
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false; // we run as root: only a missing path fails access()
  }
}

async function linksIn(ns: string): Promise<Set<string>> {
  const { ip } = await netTools();
  const out = await mustExec(ip, ['-n', ns, '-o', 'link', 'show']);
  // "3: tap0: <BROADCAST,...>" / "2: eth0@if5: <...>"
  return new Set(out.split('\n').flatMap((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? []));
}

export interface SandboxNetworkOptions {
  uid: number;
  gid: number;
  egress: EgressPolicy;
  logger?: Logger;
  claims?: AddressClaims;
}

export class SandboxNetns {
  #disposed: Promise<void> | undefined;

  constructor(
    readonly name: string,
    readonly address: string | undefined,
    private readonly claims: AddressClaims,
  ) {}

  /** Set up (or repair and re-apply) the namespace of sandbox `id`. Idempotent; undoes itself on failure. */
  static async setup(id: string, opts: SandboxNetworkOptions): Promise<SandboxNetns> {
    const ns = netnsName(id);
    const claims = opts.claims ?? new AddressClaims();
    const logger = opts.logger ?? silentLogger;
    const tools = await netTools();
    await ensureHostNetwork(logger);
    const address = await claims.claim(ns);
    const handle = new SandboxNetns(ns, address, claims);
    try {
      if (!(await fileExists(netnsPath(ns)))) {
        const r = await execWithInput(tools.ip, ['netns', 'add', ns]);
        if (r.code !== 0 && !/File exists/.test(r.stderr)) {
          throw new ForkdError('host_error', `ip netns add ${ns} failed: ${r.stderr.trim()}`);
        }
      }
      // Forwarding on; IPv6 off before any interface exists (the guest has no IPv6 route out).
      const [cmd, ...args] = [
        ...(await inNetns(ns)),
        tools.sysctl,
        '-q',
        '-e',
        '-w',
        'net.ipv4.ip_forward=1',
        'net.ipv6.conf.all.disable_ipv6=1',
        'net.ipv6.conf.default.disable_ipv6=1',
      ];
      await mustExec(cmd, args);
      if (!(await linkExists(ns))) {
        await mustExec(tools.ip, ['link', 'add', ns, 'type', 'veth', 'peer', 'name', NS_UPLINK, 'netns', ns]);
      }
      await writeSysctl(`net/ipv6/conf/${ns}/disable_ipv6`, '1');
      await ipBatch(undefined, hostPortBatch(ns));
      const inside = await linksIn(ns);
      await ipBatch(ns, insideBatch({ address, uid: opts.uid, gid: opts.gid, withTap: !inside.has(GUEST_TAP) }));
      await nftApply(ns, sandboxRuleset(opts.egress, { tap: GUEST_TAP, uplink: NS_UPLINK, guestCidr: GUEST_CIDR }));
    } catch (error) {
      // The set-up error is the caller's answer; a failed cleanup is logged (netns cleanup removes it later).
      await handle.dispose().catch((cleanup: unknown) =>
        logger.warn('cannot remove a half-made sandbox network namespace', {
          sandbox_id: id,
          netns: ns,
          error: messageOf(cleanup),
        }),
      );
      throw error;
    }
    return handle;
  }

  /** A handle on the namespace of sandbox `id` as it is (e.g. after a daemon restart). */
  static async forId(id: string, claims = new AddressClaims()): Promise<SandboxNetns> {
    const ns = netnsName(id);
    return new SandboxNetns(ns, await claims.addressOf(ns), claims);
  }

  /** argv prefix for QEMU: inside this namespace, as the VM user. */
  async wrapper(uid: number, gid: number): Promise<string[]> {
    return nsenterWrapper((await netTools()).nsenter, this.name, uid, gid);
  }

  /**
   * Delete the namespace, its veth pair and tap (and with them its nftables table) and give
   * its address back. The host end is deleted explicitly first: deleting a namespace only
   * unmounts it, and the kernel frees it (and its links) asynchronously. Idempotent.
   */
  dispose(): Promise<void> {
    this.#disposed ??= removeNetns(this.name, this.claims).catch((error: unknown) => {
      this.#disposed = undefined;
      throw error;
    });
    return this.#disposed;
  }
}

async function removeNetns(ns: string, claims: AddressClaims): Promise<void> {
  const { ip } = await netTools();
  if (await linkExists(ns)) {
    const r = await execWithInput(ip, ['link', 'del', ns]);
    if (r.code !== 0 && (await linkExists(ns))) {
      throw new ForkdError('host_error', `ip link del ${ns} failed: ${r.stderr.trim()}`);
    }
  }
  if (await fileExists(netnsPath(ns))) {
    const r = await execWithInput(ip, ['netns', 'delete', ns]);
    if (r.code !== 0 && (await fileExists(netnsPath(ns)))) {
      throw new ForkdError('host_error', `ip netns delete ${ns} failed: ${r.stderr.trim()}`);
    }
  }
  await claims.release(ns);
}

/** Our namespaces (`fk-` + 12 id characters) under /run/netns. */
export async function listSandboxNetns(): Promise<string[]> {
  // No /run/netns: ip has never made a namespace here, so none of ours exists.
  const names = await readdir('/run/netns').catch(() => [] as string[]);
  return names.filter((n) => NETNS_PATTERN.test(n)).sort();
}

/** Namespaces (by name) that some process is still inside, e.g. a live QEMU. */
async function namespacesInUse(names: readonly string[]): Promise<Set<string>> {
  const byInode = new Map<string, string>();
  for (const n of names) {
    try {
      byInode.set(`net:[${(await stat(netnsPath(n))).ino}]`, n);
    } catch {
      /* gone meanwhile */
    }
  }
  const used = new Set<string>();
  if (byInode.size === 0) return used;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const link = await readlink(`/proc/${pid}/ns/net`).catch(() => undefined); // the process exited meanwhile
    const name = link === undefined ? undefined : byInode.get(link);
    if (name !== undefined) used.add(name);
  }
  return used;
}

export interface NetCleanupReport {
  namespaces: string[];
  /** Namespaces left alone because a process (a live sandbox) is inside. */
  inUse: string[];
  links: string[];
  claims: string[];
  bridge: boolean;
  hostTable: boolean;
  errors: string[];
}

/**
 * Remove what sandboxes left behind: every sandbox namespace (`fk-` + 12 id characters) no
 * process is in (all of them with `force`), stray host links of that name, stale address
 * claims; and when no sandbox namespace remains, the bridge and the host's nftables table.
 */
export async function cleanupAll(opts: { force?: boolean; claims?: AddressClaims } = {}): Promise<NetCleanupReport> {
  const claims = opts.claims ?? new AddressClaims();
  const report: NetCleanupReport = {
    namespaces: [],
    inUse: [],
    links: [],
    claims: [],
    bridge: false,
    hostTable: false,
    errors: [],
  };
  const all = await listSandboxNetns();
  const inUse = opts.force ? new Set<string>() : await namespacesInUse(all);
  report.inUse = all.filter((n) => inUse.has(n));
  for (const ns of all) {
    if (inUse.has(ns)) continue;
    try {
      await removeNetns(ns, claims);
      report.namespaces.push(ns);
    } catch (error) {
      report.errors.push(messageOf(error));
    }
  }
  const { ip } = await netTools();
  const links = await mustExec(ip, ['-o', 'link', 'show']).catch((error: unknown) => {
    report.errors.push(`cannot list links to find stray ones: ${messageOf(error)}`);
    return '';
  });
  for (const line of links.split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name === undefined || !NETNS_PATTERN.test(name) || inUse.has(name)) continue;
    const r = await execWithInput(ip, ['link', 'del', name]);
    if (r.code === 0) report.links.push(name);
    else report.errors.push(`ip link del ${name}: ${r.stderr.trim()}`);
  }
  report.claims = await claims.releaseStale(new Set(report.inUse), opts.force ? 0 : undefined);
  if (report.inUse.length === 0) {
    try {
      Object.assign(report, await removeHostNetwork());
    } catch (error) {
      report.errors.push(messageOf(error));
    }
  }
  return report;
}
