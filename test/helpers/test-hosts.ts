// "Hosts" for many-hosts tests: network namespaces this test makes, each with its own address
// on a bridge in the root namespace, in SUBNET (198.18.42.0/24, from the 198.18.0.0/15
// benchmarking range). Before anything is made, the subnet must overlap no address or route
// this machine already has: a test network must never shadow a real one (this machine's own
// uplink may well use a documentation range), so on any overlap nothing is created and
// makeTestHosts throws.
// A process runs "on" a host through `nsenter --net` (not `ip netns exec`, which would remount
// /sys and hide the cgroup hierarchies). Everything is removed by `remove()`.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const pexec = promisify(execFile);
const ip = (...args: string[]): Promise<unknown> => pexec('ip', args);

export interface TestHost {
  ns: string;
  address: string;
  /** argv prefix that runs a command in the host's namespace. */
  prefix: string[];
}

export interface TestHosts {
  hosts: TestHost[];
  /** The root namespace's address on the hosts' bridge. */
  rootAddress: string;
  remove(): Promise<void>;
}

export const SUBNET = { prefix: '198.18.42', bits: 24 } as const;

const toInt = (a: string): number => a.split('.').reduce((v, o) => v * 256 + Number(o), 0);

/** Whether a.b.c.d/len overlaps SUBNET. */
export function overlapsSubnet(cidr: string): boolean {
  const [addr, len] = cidr.split('/');
  const bits = Math.min(Number(len ?? 32), SUBNET.bits);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (toInt(addr!) & mask) >>> 0 === (toInt(`${SUBNET.prefix}.0`) & mask) >>> 0;
}

/** Every IPv4 address (as CIDR) and route destination this machine has, except the default route. */
async function existingNetworks(): Promise<string[]> {
  const addrs = ((await pexec('ip', ['-o', '-4', 'addr', 'show'])) as { stdout: string }).stdout;
  const routes = ((await pexec('ip', ['-4', 'route', 'show', 'table', 'all'])) as { stdout: string }).stdout;
  const out: string[] = [];
  for (const m of addrs.matchAll(/inet (\d+\.\d+\.\d+\.\d+\/\d+)/g)) out.push(m[1]!);
  for (const line of routes.split('\n')) {
    const dst = /^(?:local |broadcast |unicast )?(\d+\.\d+\.\d+\.\d+(?:\/\d+)?)/.exec(line.trim())?.[1];
    if (dst) out.push(dst.includes('/') ? dst : `${dst}/32`);
  }
  return out;
}

export async function makeTestHosts(n: number): Promise<TestHosts> {
  const clash = (await existingNetworks()).filter(overlapsSubnet);
  if (clash.length > 0)
    throw new Error(
      `${SUBNET.prefix}.0/${SUBNET.bits} overlaps this machine's ${clash.join(', ')}: not making test hosts there`,
    );
  const tag = randomBytes(2).toString('hex');
  const bridge = `fkt${tag}br`;
  const hosts: TestHost[] = [];
  const remove = async (): Promise<void> => {
    for (const h of hosts) {
      await ip('link', 'del', h.ns).catch(() => undefined);
      await ip('netns', 'delete', h.ns).catch(() => undefined);
    }
    await ip('link', 'del', bridge).catch(() => undefined);
  };
  try {
    await ip('link', 'add', bridge, 'type', 'bridge');
    await ip('addr', 'add', `${SUBNET.prefix}.1/${SUBNET.bits}`, 'dev', bridge);
    await ip('link', 'set', bridge, 'up');
    for (let i = 1; i <= n; i++) {
      const ns = `fkt${tag}h${i}`;
      const address = `${SUBNET.prefix}.${10 + i}`;
      hosts.push({ ns, address, prefix: ['nsenter', `--net=/run/netns/${ns}`, '--'] });
      await ip('netns', 'add', ns);
      await ip('link', 'add', ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await ip('link', 'set', ns, 'master', bridge, 'up');
      await ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await ip('-n', ns, 'link', 'set', 'eth0', 'up');
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
  } catch (err) {
    await remove();
    throw err;
  }
  return { hosts, rootAddress: `${SUBNET.prefix}.1`, remove };
}
