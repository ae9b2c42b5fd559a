// The host side every sandbox namespace plugs into: bridge `forkd-br0` at 10.43.0.1/16, IPv4
// forwarding, the host's `inet forkd` nftables table (hostRuleset) and a usable /dev/net/tun.
// Shared by all sandboxes and set up on first use (idempotent, safe from several processes at
// once); `removeHostNetwork` takes it down again (`forkd netns cleanup`, test teardown).
import { access, chmod, stat, writeFile } from 'node:fs/promises';
import { ForkdError, errnoOf, messageOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { silentLogger } from '../lib/log.js';
import { execWithInput, ipBatch, mustExec, netTools, nftApply } from './net-exec.js';
import { hostRuleset } from './nftables.js';

export const BRIDGE = 'forkd-br0';
export const BRIDGE_ADDRESS = '10.43.0.1';
export const BRIDGE_PREFIX = 16;
export const BRIDGE_CIDR = '10.43.0.0/16';
export const TUN_DEVICE = '/dev/net/tun';

let ready: Promise<void> | undefined;

export async function linkExists(name: string): Promise<boolean> {
  // /sys/class/net/<name> exists exactly while the link does; any failure means no such link.
  try {
    await access(`/sys/class/net/${name}`);
    return true;
  } catch {
    return false;
  }
}

/** Write a sysctl of the host's namespace; a missing one (e.g. no IPv6) is not an error. */
export async function writeSysctl(path: string, value: string): Promise<void> {
  try {
    await writeFile(`/proc/sys/${path}`, value);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return;
    throw new ForkdError('host_error', `cannot set ${path.replace(/\//g, '.')}=${value}: ${messageOf(error)}`, {
      cause: error,
    });
  }
}

/**
 * QEMU opens /dev/net/tun as the VM user to attach to its tap (which that user owns). udev
 * makes the node 0666 on ordinary distributions (50-udev-default.rules); hosts without udev
 * leave the kernel's 0600, which only root can open.
 */
async function ensureTunUsable(logger: Logger): Promise<void> {
  let mode: number;
  try {
    mode = (await stat(TUN_DEVICE)).mode & 0o777;
  } catch (error) {
    throw new ForkdError(
      'host_error',
      `${TUN_DEVICE} is missing (${errnoOf(error) ?? messageOf(error)}); load the tun module`,
      {
        cause: error,
      },
    );
  }
  if ((mode & 0o006) === 0o006) return;
  await chmod(TUN_DEVICE, 0o666);
  logger.info('made /dev/net/tun 0666 (as udev does) so QEMU can attach to its tap as the VM user', {
    previousMode: mode.toString(8),
  });
}

async function setUp(logger: Logger): Promise<void> {
  await netTools();
  await ensureTunUsable(logger);
  if (!(await linkExists(BRIDGE))) {
    const { ip } = await netTools();
    const r = await execWithInput(ip, ['link', 'add', BRIDGE, 'type', 'bridge']);
    // Another process may have created it between the check and the add.
    if (r.code !== 0 && !/File exists/.test(r.stderr)) {
      throw new ForkdError('host_error', `ip link add ${BRIDGE} type bridge failed: ${r.stderr.trim()}`);
    }
  }
  await writeSysctl(`net/ipv6/conf/${BRIDGE}/disable_ipv6`, '1');
  await ipBatch(undefined, [`addr replace ${BRIDGE_ADDRESS}/${BRIDGE_PREFIX} dev ${BRIDGE}`, `link set ${BRIDGE} up`]);
  await nftApply(undefined, hostRuleset({ bridge: BRIDGE, bridgeCidr: BRIDGE_CIDR }));
  await writeSysctl('net/ipv4/ip_forward', '1');
}

/**
 * Make sure the bridge, forwarding and host rules exist: set up once per process, again when
 * the bridge has gone (e.g. `forkd netns cleanup` from another process).
 */
export async function ensureHostNetwork(logger: Logger = silentLogger): Promise<void> {
  if (ready !== undefined && !(await linkExists(BRIDGE))) ready = undefined;
  ready ??= setUp(logger).catch((error: unknown) => {
    ready = undefined;
    throw error;
  });
  return ready;
}

export interface HostNetworkRemoval {
  bridge: boolean;
  hostTable: boolean;
}

/** Remove the bridge and the host table (ip_forward is left as it is: others may rely on it). */
export async function removeHostNetwork(): Promise<HostNetworkRemoval> {
  ready = undefined;
  const { ip, nft } = await netTools();
  const out: HostNetworkRemoval = { bridge: false, hostTable: false };
  if (await linkExists(BRIDGE)) {
    await mustExec(ip, ['link', 'del', BRIDGE]);
    out.bridge = true;
  }
  const r = await execWithInput(nft, ['delete', 'table', 'inet', 'forkd']);
  out.hostTable = r.code === 0;
  return out;
}
