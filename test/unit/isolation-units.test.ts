// Pure parts of sandbox isolation: CIDR and policy validation, generated nftables rulesets,
// namespace/address naming, and cgroup paths and values for v1, v2 and hybrid hosts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCgroupMounts } from '../../src/host/cgroups-detect.js';
import { cgroupPlan, cpuQuotaUs, parseOomKills, validateLimits } from '../../src/host/cgroups.js';
import {
  ALWAYS_BLOCKED_V4,
  hostRuleset,
  parseEgressPolicy,
  sandboxRuleset,
  validateCidr,
} from '../../src/host/nftables.js';
import {
  GUEST_CIDR,
  GUEST_TAP,
  NS_UPLINK,
  TAP_ADDRESS,
  hostPortBatch,
  insideBatch,
  netnsName,
  nsenterWrapper,
} from '../../src/host/netns.js';
import { addressCandidates, bridgeHostAddress } from '../../src/host/net-addr.js';
import { BRIDGE_ADDRESS, BRIDGE_CIDR } from '../../src/host/bridge.js';
import { validateIsolationOptions } from '../../src/core/isolation.js';
import { isolationFor } from '../../src/core/controller/sandboxes.js';
import { GUEST_GATEWAY, GUEST_IP } from '../../src/image/guest-init.js';
import { ForkdError } from '../../src/lib/errors.js';
import { DEFAULT_DEFAULT_EGRESS } from '../../src/lib/config.js';

const ID = 'sb-abcdefghijklmnop';
const invalid = (fn: () => unknown, pattern: RegExp): void =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof ForkdError && e.code === 'invalid_argument' && pattern.test(e.message),
  );

test('CIDRs: strict IPv4 a.b.c.d/n only', () => {
  for (const ok of [
    '0.0.0.0/0',
    '10.0.0.0/8',
    '198.51.100.0/24',
    '203.0.113.7/32',
    '172.16.0.0/12',
    '255.255.255.255/32',
  ])
    assert.equal(validateCidr(ok), ok);
  const bad = [
    '10.0.0.0',
    '10.0.0.0/33',
    '10.0.0/8',
    '010.0.0.0/8',
    '10.0.0.256/32',
    '1.2.3.4/-1',
    ' 10.0.0.0/8',
    '10.0.0.0/8 ',
    '10.0.0.0/8,1.2.3.4/32',
    '10.0.0.0/8; flush ruleset',
    '10.0.0.0/8\n',
    '::/0',
    'fe80::/10',
    '10.0.0.0/08',
    '',
    'example.com/32',
  ];
  for (const b of bad) invalid(() => validateCidr(b), /is not an IPv4 CIDR/);
  invalid(() => validateCidr(42), /\(number\) is not an IPv4 CIDR/);
  invalid(() => validateCidr('10.0.0.1/8'), /host bits set; did you mean 10\.0\.0\.0\/8\?/);
  invalid(() => validateCidr('198.51.100.77/24'), /did you mean 198\.51\.100\.0\/24/);
});

test('egress policies: allow, deny, allow-list; the daemon default is deny, resolved once', () => {
  assert.equal(DEFAULT_DEFAULT_EGRESS, 'deny');
  // No default below the validation: an absent policy is the caller's to resolve.
  invalid(() => parseEgressPolicy(undefined), /egress must be/);
  assert.deepEqual(validateIsolationOptions({ network: {} }, 'allow'), { network: { egress: 'allow' } });
  assert.equal(parseEgressPolicy('allow'), 'allow');
  assert.equal(parseEgressPolicy('deny'), 'deny');
  assert.deepEqual(parseEgressPolicy({ allow: ['198.51.100.0/24', '198.51.100.0/24'] }), {
    allow: ['198.51.100.0/24'],
  });
  assert.deepEqual(parseEgressPolicy({ allow: [] }), { allow: [] });
  for (const bad of ['ALLOW', 'open', null, 1, [], { allow: '1.2.3.0/24' }, { allow: [], extra: 1 }, { deny: [] }])
    invalid(() => parseEgressPolicy(bad), /egress must be/);
  invalid(() => parseEgressPolicy({ allow: ['1.2.3.4/32', 'evil"; flush ruleset'] }), /is not an IPv4 CIDR/);
  invalid(() => parseEgressPolicy({ allow: Array.from({ length: 257 }, () => '1.2.3.4/32') }), /at most 256/);
});

const RS = { tap: GUEST_TAP, uplink: NS_UPLINK, guestCidr: GUEST_CIDR };

test('sandbox ruleset: replaces its table atomically, blocks the always-blocked set first', () => {
  const text = sandboxRuleset('allow', RS);
  assert.ok(text.startsWith('table inet forkd\ndelete table inet forkd\ntable inet forkd {\n'));
  assert.match(
    text,
    /elements = \{ 0\.0\.0\.0\/8, 10\.43\.0\.0\/16, 127\.0\.0\.0\/8, 169\.254\.0\.0\/16, 224\.0\.0\.0\/3 \}/,
  );
  const blocked = text.indexOf('@always_blocked counter name "blocked" drop');
  const accept = text.indexOf('iifname "tap0" oifname "eth0" meta nfproto ipv4 accept');
  assert.ok(blocked > 0 && accept > blocked, 'always-blocked is checked before the policy accepts');
  assert.match(text, /chain forward \{\n\s+type filter hook forward priority filter; policy drop;/);
  assert.match(text, /chain output \{\n\s+type filter hook output priority filter; policy drop;/);
  assert.match(text, /chain input \{\n\s+type filter hook input priority filter; policy drop;/);
  assert.match(text, /oifname "eth0" ip saddr 10\.42\.0\.0\/24 masquerade/);
  assert.ok(ALWAYS_BLOCKED_V4.includes('169.254.0.0/16') && ALWAYS_BLOCKED_V4.includes(BRIDGE_CIDR));
});

test('sandbox ruleset: deny accepts nothing new from the guest', () => {
  const text = sandboxRuleset('deny', RS);
  const fromGuest = text.split('\n').filter((l) => l.includes('iifname "tap0" oifname "eth0"'));
  for (const l of fromGuest) assert.ok(/established,related accept|drop$/.test(l.trim()), l);
  assert.doesNotMatch(text, /@allowed/);
  assert.equal(sandboxRuleset({ allow: [] }, RS), text, 'an empty allow-list is deny');
});

test('sandbox ruleset: allow-list accepts only its set', () => {
  const text = sandboxRuleset({ allow: ['198.51.100.0/24', '10.9.0.0/16'] }, RS);
  assert.match(
    text,
    /set allowed \{\n\s+type ipv4_addr\n\s+flags interval\n\s+elements = \{ 198\.51\.100\.0\/24, 10\.9\.0\.0\/16 \}/,
  );
  assert.match(text, /iifname "tap0" oifname "eth0" meta nfproto ipv4 ip daddr @allowed accept/);
  assert.doesNotMatch(text, /meta nfproto ipv4 accept/);
  assert.ok(text.indexOf('@always_blocked') < text.indexOf('@allowed accept'), 'blocked wins over the allow-list');
  // A policy that bypassed parseEgressPolicy still cannot inject text.
  assert.throws(() => sandboxRuleset({ allow: ['1.2.3.0/24 } ; flush ruleset ; {'] }, RS), ForkdError);
  assert.throws(() => sandboxRuleset('allow', { ...RS, tap: 'tap0" accept' }), /bad interface name/);
});

test('host ruleset: nothing from the bridge reaches the host or another port; NAT out', () => {
  const text = hostRuleset({ bridge: 'forkd-br0', bridgeCidr: BRIDGE_CIDR });
  assert.match(
    text,
    /iifname "forkd-br0" ct state established,related accept\n\s+iifname "forkd-br0" counter name "to_host" drop/,
  );
  assert.match(text, /iifname "forkd-br0" oifname "forkd-br0" counter name "between_sandboxes" drop/);
  assert.match(text, /ip saddr 10\.43\.0\.0\/16 oifname != "forkd-br0" masquerade/);
});

test('namespace names: fk- + last 12 id characters, at most 15 (an interface name)', () => {
  assert.equal(netnsName(ID), 'fk-efghijklmnop');
  assert.equal(netnsName(ID).length, 15);
  assert.throws(
    () => netnsName('sb-../../etc/xx'),
    (e: unknown) => e instanceof ForkdError && e.code === 'invalid_id',
  );
  assert.deepEqual(nsenterWrapper('/usr/bin/nsenter', 'fk-efghijklmnop', 999, 995), [
    '/usr/bin/nsenter',
    '--net=/run/netns/fk-efghijklmnop',
    '--setuid',
    '999',
    '--setgid',
    '995',
    '--',
  ]);
});

test('namespace contents: tap owned by the VM user at the guest gateway, uplink on the bridge', () => {
  assert.equal(TAP_ADDRESS, GUEST_GATEWAY, 'the tap is the gateway the guest image configures');
  assert.ok(GUEST_CIDR.startsWith(GUEST_IP.replace(/\.\d+$/, '.0/')));
  const lines = insideBatch({ address: '10.43.1.2', uid: 999, gid: 995, withTap: true });
  assert.ok(lines.includes('tuntap add dev tap0 mode tap user 999 group 995'));
  assert.ok(lines.includes('addr replace 10.42.0.1/24 dev tap0'));
  assert.ok(lines.includes('addr replace 10.43.1.2/16 dev eth0'));
  assert.ok(lines.includes(`route replace default via ${BRIDGE_ADDRESS} dev eth0`));
  assert.ok(!insideBatch({ address: '10.43.1.2', uid: 1, gid: 1, withTap: false }).some((l) => l.includes('tuntap')));
  assert.deepEqual(hostPortBatch('fk-efghijklmnop'), [
    'link set fk-efghijklmnop master forkd-br0',
    'link set dev fk-efghijklmnop type bridge_slave isolated on',
    'link set fk-efghijklmnop up',
  ]);
});

test('bridge addresses: deterministic start per namespace, every host number once, never .0.0/.0.1/.255.255', () => {
  assert.equal(bridgeHostAddress(2), '10.43.0.2');
  assert.equal(bridgeHostAddress(65534), '10.43.255.254');
  const first = (ns: string, n: number): string[] => {
    const out: string[] = [];
    for (const a of addressCandidates(ns)) {
      out.push(a);
      if (out.length === n) break;
    }
    return out;
  };
  assert.deepEqual(first('fk-aaaaaaaaaaaa', 3), first('fk-aaaaaaaaaaaa', 3));
  assert.notEqual(first('fk-aaaaaaaaaaaa', 1)[0], first('fk-bbbbbbbbbbbb', 1)[0]);
  const all = [...addressCandidates('fk-aaaaaaaaaaaa')];
  assert.equal(all.length, 65533);
  assert.equal(new Set(all).size, 65533);
  for (const reserved of ['10.43.0.0', '10.43.0.1', '10.43.255.255']) assert.ok(!all.includes(reserved), reserved);
});

const HYBRID = parseCgroupMounts(
  [
    'tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0',
    'cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0',
    'cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0',
    'cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0',
    'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0',
  ].join('\n'),
  '',
);
const V2 = parseCgroupMounts(
  'cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0',
  'cpuset cpu io memory hugetlb pids rdma misc',
);

test('cgroup plan on a v1/hybrid host: one dir per controller mount, v1 file names', () => {
  const plan = cgroupPlan(HYBRID, ID, { memoryMiB: 256, cpuLimit: 0.5, pidsLimit: 64 });
  assert.deepEqual(
    plan.dirs.map((d) => [d.path, d.version, d.controllers]),
    [
      [`/sys/fs/cgroup/memory/forkd/${ID}`, 'v1', ['memory']],
      [`/sys/fs/cgroup/cpu/forkd/${ID}`, 'v1', ['cpu']],
      [`/sys/fs/cgroup/pids/forkd/${ID}`, 'v1', ['pids']],
    ],
  );
  assert.deepEqual(plan.enable, []);
  assert.deepEqual(plan.writes, [
    { file: `/sys/fs/cgroup/memory/forkd/${ID}/memory.limit_in_bytes`, value: String(256 * 1024 * 1024) },
    {
      file: `/sys/fs/cgroup/memory/forkd/${ID}/memory.memsw.limit_in_bytes`,
      value: String(256 * 1024 * 1024),
      optional: true,
    },
    { file: `/sys/fs/cgroup/cpu/forkd/${ID}/cpu.cfs_period_us`, value: '100000' },
    { file: `/sys/fs/cgroup/cpu/forkd/${ID}/cpu.cfs_quota_us`, value: '50000' },
    { file: `/sys/fs/cgroup/pids/forkd/${ID}/pids.max`, value: '64' },
  ]);
  // Co-mounted controllers share one directory.
  const comounted = parseCgroupMounts(
    'cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0',
  );
  assert.deepEqual(
    cgroupPlan(comounted, ID, {}).dirs.map((d) => d.path),
    [`/sys/fs/cgroup/memory/forkd/${ID}`, `/sys/fs/cgroup/cpu,cpuacct/forkd/${ID}`],
  );
});

test('cgroup plan on a v2 host: one dir, controllers enabled in the parents, v2 file names', () => {
  const plan = cgroupPlan(V2, ID, { memoryMiB: 256, cpuLimit: 2, pidsLimit: 64 });
  assert.deepEqual(plan.dirs, [
    { path: `/sys/fs/cgroup/forkd/${ID}`, version: 'v2', controllers: ['memory', 'cpu', 'pids'] },
  ]);
  assert.deepEqual(plan.enable, [
    { file: '/sys/fs/cgroup/cgroup.subtree_control', value: '+memory +cpu +pids' },
    { file: '/sys/fs/cgroup/forkd/cgroup.subtree_control', value: '+memory +cpu +pids' },
  ]);
  const dir = `/sys/fs/cgroup/forkd/${ID}`;
  assert.deepEqual(plan.writes, [
    { file: `${dir}/memory.max`, value: String(256 * 1024 * 1024) },
    { file: `${dir}/memory.swap.max`, value: '0', optional: true },
    { file: `${dir}/memory.oom.group`, value: '1', optional: true },
    { file: `${dir}/cpu.max`, value: '200000 100000' },
    { file: `${dir}/pids.max`, value: '64' },
  ]);
  assert.deepEqual(cgroupPlan(V2, ID, {}).writes, [], 'no limits: a cgroup for accounting and OOM records only');
});

test('cgroup limits are validated; a missing controller is named', () => {
  assert.equal(cpuQuotaUs(0.5), 50_000);
  assert.equal(cpuQuotaUs(0.01), 1000);
  invalid(() => validateLimits({ memoryMiB: 32 }), /memoryMiB 32 is out of range 64\.\./);
  invalid(() => validateLimits({ memoryMiB: 100.5 }), /memoryMiB must be an integer/);
  invalid(() => validateLimits({ cpuLimit: 0 }), /cpuLimit 0 is out of range/);
  invalid(() => validateLimits({ cpuLimit: Number.NaN }), /cpuLimit must be a number/);
  invalid(() => validateLimits({ pidsLimit: 4 }), /pidsLimit 4 is out of range 16\.\./);
  invalid(() => validateIsolationOptions({ network: { egress: { allow: ['nope'] } } }, 'deny'), /not an IPv4 CIDR/);
  assert.deepEqual(validateIsolationOptions({ network: {} }, 'deny'), { network: { egress: 'deny' } });
  const noPids = parseCgroupMounts('cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0');
  assert.throws(
    () => cgroupPlan(noPids, ID, { pidsLimit: 64 }),
    (e: unknown) => e instanceof ForkdError && e.code === 'host_error' && /no pids cgroup controller/.test(e.message),
  );
  assert.throws(
    () => cgroupPlan(HYBRID, '../../etc', {}),
    (e: unknown) => e instanceof ForkdError && e.code === 'invalid_id',
  );
});

test('OOM kill counters parse from v1 memory.oom_control and v2 memory.events', () => {
  assert.equal(parseOomKills('oom_kill_disable 0\nunder_oom 0\noom_kill 0\n'), 0);
  assert.equal(parseOomKills('oom_kill_disable 0\nunder_oom 0\noom_kill 1\n'), 1);
  assert.equal(parseOomKills('low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n'), 1);
  assert.equal(parseOomKills('oom_group_kill 3\n'), 0);
  assert.equal(parseOomKills(''), 0);
});

test('isolation of an API spawn: limits make a cgroup, egress needs a namespace, the daemon default fills in', () => {
  assert.equal(isolationFor({}, 'deny'), undefined, 'nothing asked, nothing set up');
  assert.deepEqual(isolationFor({ cpuLimit: 0.5, pidsLimit: 64 }, 'deny'), { cpuLimit: 0.5, pidsLimit: 64 });
  assert.deepEqual(isolationFor({ memoryLimitMiB: 256, perChildNetns: true }, 'deny'), {
    memoryMiB: 256,
    network: { egress: 'deny' },
  });
  assert.deepEqual(isolationFor({ perChildNetns: true }, 'allow'), { network: { egress: 'allow' } });
  assert.deepEqual(isolationFor({ perChildNetns: true, egress: 'deny' }, 'allow'), { network: { egress: 'deny' } });
  assert.deepEqual(
    isolationFor({ perChildNetns: true, egress: { allow: ['198.51.100.0/24', '198.51.100.0/24'] } }, 'deny'),
    { network: { egress: { allow: ['198.51.100.0/24'] } } },
    'duplicates dropped',
  );
  invalid(() => isolationFor({ egress: 'allow' }, 'deny'), /egress needs per_child_netns: true/);
  invalid(() => isolationFor({ perChildNetns: false, egress: 'deny' }, 'deny'), /egress needs per_child_netns/);
  invalid(() => isolationFor({ perChildNetns: true, egress: { allow: ['10.0.0.1/8'] } }, 'deny'), /host bits set/);
  invalid(() => isolationFor({ perChildNetns: true, egress: 'open' }, 'deny'), /egress must be/);
  invalid(() => isolationFor({ cpuLimit: 0 }, 'deny'), /cpuLimit 0 is out of range/);
  invalid(() => isolationFor({ pidsLimit: 20.5 }, 'deny'), /pidsLimit must be an integer/);
});
