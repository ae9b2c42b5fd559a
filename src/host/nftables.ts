// nftables rulesets for sandbox networking, generated as text and applied with `nft -f -`
// (argv, never a shell). Two tables, both `inet forkd`:
//   - in each sandbox's namespace: the egress policy for traffic from the guest's tap, NAT of
//     the guest's 10.42.0.0/24 to the namespace's bridge address, and nothing else in or out;
//   - on the host: sandboxes may not talk to the host itself (so not to the daemon's port on
//     any host address), nor to each other through it; their traffic leaving the host is NAT'd.
// Each ruleset replaces its table atomically ("table; delete table; table {...}" is one
// transaction), so applying it again is harmless.
import { ForkdError } from '../lib/errors.js';
import { MAX_ALLOW_CIDRS } from '../lib/contract.js';

export type EgressPolicy = 'allow' | 'deny' | { allow: string[] };

/**
 * Always dropped, whatever the policy: "this network", the sandbox bridge (the host's bridge
 * address and every other sandbox), loopback, link-local (cloud metadata 169.254.169.254
 * lives there), and multicast/reserved/broadcast (224.0.0.0/3).
 */
export const ALWAYS_BLOCKED_V4 = ['0.0.0.0/8', '10.43.0.0/16', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/3'];

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const CIDR_RE = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}/(3[0-2]|[12]?[0-9])$`);

function ipv4ToInt(a: string): number {
  return a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

/**
 * Strict IPv4 CIDR: a.b.c.d/n, decimal octets without leading zeros, n in 0..32, no host bits
 * set (10.0.0.1/8 is refused rather than silently widened). Returns the CIDR unchanged.
 */
export function validateCidr(value: unknown): string {
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 64)) : `(${typeof value})`;
  if (typeof value !== 'string' || !CIDR_RE.test(value)) {
    throw new ForkdError('invalid_argument', `egress CIDR ${shown} is not an IPv4 CIDR like 203.0.113.0/24`);
  }
  const [addr, bits] = value.split('/') as [string, string];
  const prefix = Number(bits);
  const ip = ipv4ToInt(addr);
  const hostMask = prefix === 0 ? 0xffffffff : 2 ** (32 - prefix) - 1;
  if (ip % (hostMask + 1) !== 0) {
    const network = ip - (ip % (hostMask + 1));
    const dotted = [24, 16, 8, 0].map((s) => Math.floor(network / 2 ** s) % 256).join('.');
    throw new ForkdError(
      'invalid_argument',
      `egress CIDR ${shown} has host bits set; did you mean ${dotted}/${prefix}?`,
    );
  }
  return value;
}

/**
 * Validate an egress policy from an API body or CLI flag; the result is safe for a ruleset.
 * There is no default here: a spawn that names none gets the daemon's `--default-egress`,
 * resolved by core/isolation.ts validateIsolationOptions.
 */
export function parseEgressPolicy(value: unknown): EgressPolicy {
  if (value === 'allow' || value === 'deny') return value;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const list = (value as { allow?: unknown }).allow;
    if (keys.length === 1 && keys[0] === 'allow' && Array.isArray(list)) {
      if (list.length > MAX_ALLOW_CIDRS) {
        throw new ForkdError(
          'invalid_argument',
          `egress allow-list has ${list.length} entries; at most ${MAX_ALLOW_CIDRS}`,
        );
      }
      return { allow: [...new Set(list.map(validateCidr))] };
    }
  }
  throw new ForkdError('invalid_argument', 'egress must be "allow", "deny" or {"allow": ["a.b.c.d/n", ...]}');
}

/** Interface names go into the ruleset quoted; they come from our own constants and ids. */
function assertIfname(name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new Error(`nftables: bad interface name ${JSON.stringify(name)}`);
  return name;
}

export interface SandboxRulesetOptions {
  /** The guest's tap inside the namespace. */
  tap: string;
  /** The namespace's end of the veth pair to the host bridge. */
  uplink: string;
  /** The guest's subnet (10.42.0.0/24), NAT'd to the uplink's address. */
  guestCidr: string;
}

/** The table inside one sandbox's namespace. */
export function sandboxRuleset(policy: EgressPolicy, opts: SandboxRulesetOptions): string {
  const tap = assertIfname(opts.tap);
  const up = assertIfname(opts.uplink);
  const guest = validateCidr(opts.guestCidr);
  const fromGuest = `iifname "${tap}" oifname "${up}" meta nfproto ipv4`;
  const allowList = typeof policy === 'object' ? policy.allow.map(validateCidr) : [];
  const egress =
    policy === 'allow'
      ? [`${fromGuest} accept`]
      : typeof policy === 'object' && allowList.length > 0
        ? [`${fromGuest} ip daddr @allowed accept`]
        : [];
  const lines = [
    'table inet forkd',
    'delete table inet forkd',
    'table inet forkd {',
    '  counter blocked {}',
    '  counter denied {}',
    '  set always_blocked {',
    '    type ipv4_addr',
    '    flags interval',
    `    elements = { ${ALWAYS_BLOCKED_V4.join(', ')} }`,
    '  }',
    ...(allowList.length > 0
      ? [
          '  set allowed {',
          '    type ipv4_addr',
          '    flags interval',
          `    elements = { ${allowList.join(', ')} }`,
          '  }',
        ]
      : []),
    '  chain forward {',
    '    type filter hook forward priority filter; policy drop;',
    '    ct state invalid drop',
    // Replies to connections the policy let out (and their ICMP errors).
    `    iifname "${up}" oifname "${tap}" ct state established,related accept`,
    `    ${fromGuest} ct state established,related accept`,
    `    ${fromGuest} ip daddr @always_blocked counter name "blocked" drop`,
    ...egress.map((r) => `    ${r}`),
    // Everything else: IPv6, new connections towards the guest, what the policy refused.
    '    counter name "denied" drop',
    '  }',
    // Nothing in the namespace listens; the guest may ping its gateway.
    '  chain input {',
    '    type filter hook input priority filter; policy drop;',
    '    iif "lo" accept',
    '    ct state established,related accept',
    `    iifname "${tap}" icmp type echo-request accept`,
    '  }',
    // Only QEMU runs in the namespace: it must not reach the network except through the guest.
    '  chain output {',
    '    type filter hook output priority filter; policy drop;',
    '    oif "lo" accept',
    `    oifname "${tap}" accept`,
    '    ct state established,related accept',
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    oifname "${up}" ip saddr ${guest} masquerade`,
    '  }',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

export interface HostRulesetOptions {
  bridge: string;
  bridgeCidr: string;
}

/** The host's table: shared by every sandbox, applied when the bridge is set up. */
export function hostRuleset(opts: HostRulesetOptions): string {
  const br = assertIfname(opts.bridge);
  const cidr = validateCidr(opts.bridgeCidr);
  const lines = [
    'table inet forkd',
    'delete table inet forkd',
    'table inet forkd {',
    '  counter to_host {}',
    '  counter between_sandboxes {}',
    // A sandbox reaches no host address (bridge address, LAN address, anything): the daemon's
    // port is unreachable whatever address it binds. Connections the host opened may answer.
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    `    iifname "${br}" ct state established,related accept`,
    `    iifname "${br}" counter name "to_host" drop`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    iifname "${br}" oifname "${br}" counter name "between_sandboxes" drop`,
    `    iifname "${br}" ip daddr { ${ALWAYS_BLOCKED_V4.join(', ')} } counter name "to_host" drop`,
    // Nobody outside opens connections to a sandbox.
    `    oifname "${br}" ct state established,related accept`,
    `    oifname "${br}" drop`,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${cidr} oifname != "${br}" masquerade`,
    '  }',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}
