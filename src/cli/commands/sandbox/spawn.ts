// `forkd sandbox spawn --tag T -n N`: restore N sandboxes of a snapshot in the daemon, where they
// keep running; prints one id a line (or --json), and a warning line per daemon warning on stderr.
import { ForkdError } from '../../../lib/errors.js';
import { FORK_N_RANGE, LIMIT_RANGES, TTL_SECS_RANGE } from '../../../lib/contract.js';
import { parseEgressPolicy } from '../../../host/nftables.js';
import type { EgressPolicy } from 'forkd';
import { intFlag, listFlag, numberFlag } from '../../args.js';
import { EXIT_FAILURE, EXIT_OK, type Command } from '../../command.js';
import { openController } from '../../daemon.js';
import { clientFlags, JSON_FLAG, N_FLAG, parseFlags } from '../../flags.js';
import { createProgress } from '../../progress.js';

/** Restoring many sandboxes takes a while: the deadline of that one call (the SDK's own default). */
export const SPAWN_TIMEOUT_SECS = 600;

/** `--egress allow|deny|CIDR[,CIDR...]`: a CIDR list is the allow-list. Checked here, before any request. */
export function egressFlag(raw: string | undefined): EgressPolicy | undefined {
  if (raw === undefined) return undefined;
  if (raw === 'allow' || raw === 'deny') return raw;
  const cidrs = listFlag(raw);
  if (cidrs.length === 0) {
    throw new ForkdError(
      'invalid_argument',
      `--egress must be allow, deny or CIDR[,CIDR...], got ${JSON.stringify(raw)}`,
    );
  }
  return parseEgressPolicy({ allow: cidrs });
}

const FLAGS = {
  tag: { type: 'string', value: 'TAG', help: 'snapshot to restore (required)' },
  n: N_FLAG,
  'ttl-secs': { type: 'string', value: 'SECS', default: 'none', help: 'the daemon kills each sandbox after this long' },
  'memory-limit-mib': {
    type: 'string',
    value: 'MIB',
    default: 'none',
    help: "memory limit of each sandbox's cgroup (bounds its divergence from the snapshot)",
  },
  'cpu-limit': {
    type: 'string',
    value: 'CPUS',
    default: 'none',
    help: "CPU quota of each sandbox's cgroup, in CPUs (0.5 = half of one)",
  },
  'pids-limit': {
    type: 'string',
    value: 'N',
    default: 'none',
    help: "pids.max of each sandbox's cgroup (QEMU's threads, not guest processes; >= 16)",
  },
  'per-child-netns': {
    type: 'boolean',
    help: "each sandbox in its own network namespace; egress per the daemon's --default-egress (deny unless set)",
  },
  egress: {
    type: 'string',
    value: 'POLICY',
    help: 'allow, deny, or a comma-separated list of IPv4 CIDRs (the allow-list); implies --per-child-netns',
  },
  meta: { type: 'string', value: 'KEY=VALUE', multiple: true, help: 'metadata stored with each sandbox' },
  json: JSON_FLAG,
  ...clientFlags(SPAWN_TIMEOUT_SECS),
} as const;

export const sandboxSpawnCommand: Command = {
  name: 'sandbox spawn',
  group: 'sandboxes',
  modes: 'daemon',
  summary: 'Start N sandboxes of a snapshot in the daemon, where they keep running (prints their ids)',
  usage: ['sandbox spawn --tag TAG [-n N] [flags]'],
  flags: FLAGS,
  examples: [
    'forkd sandbox spawn --tag py -n 4 --meta job=42',
    'forkd sandbox spawn --tag py --memory-limit-mib 256 --egress 203.0.113.0/24 --ttl-secs 600',
  ],
  notes: ['Prints the id of each running sandbox, one a line; exit 1 when any failed to start (its reason on stderr).'],
  async run(argv, ctx) {
    const { values } = parseFlags(argv, FLAGS);
    if (values.tag === undefined) throw new ForkdError('invalid_argument', '--tag is required');
    const n = intFlag('n', values.n, FORK_N_RANGE.default, FORK_N_RANGE);
    const metadata: Record<string, string> = {};
    for (const kv of values.meta ?? []) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new ForkdError('invalid_argument', `--meta must be KEY=VALUE, got ${JSON.stringify(kv)}`);
      metadata[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    const cpuLimit = numberFlag('cpu-limit', values['cpu-limit'], LIMIT_RANGES.cpuLimit);
    const egress = egressFlag(values.egress);
    const c = await openController(values, SPAWN_TIMEOUT_SECS);
    const progress = createProgress(ctx, !values.json || ctx.interactive);
    progress.step(`spawning ${n} sandbox${n === 1 ? '' : 'es'} of ${values.tag} at ${c.url}`);
    const res = await c.sandboxes.spawn(
      {
        snapshot_tag: values.tag,
        n,
        ...(values['ttl-secs'] !== undefined
          ? { ttl_secs: intFlag('ttl-secs', values['ttl-secs'], 0, TTL_SECS_RANGE) }
          : {}),
        ...(values['memory-limit-mib'] !== undefined
          ? {
              memory_limit_mib: intFlag('memory-limit-mib', values['memory-limit-mib'], 0, LIMIT_RANGES.memoryMiB),
            }
          : {}),
        ...(cpuLimit !== undefined ? { cpu_limit: cpuLimit } : {}),
        ...(values['pids-limit'] !== undefined
          ? { pids_limit: intFlag('pids-limit', values['pids-limit'], 0, LIMIT_RANGES.pidsLimit) }
          : {}),
        ...(values['per-child-netns'] || egress !== undefined ? { per_child_netns: true } : {}),
        ...(egress !== undefined ? { egress } : {}),
        ...(values.meta ? { metadata } : {}),
      },
      { timeoutMs: c.transport.defaultTimeoutMs },
    );
    const failed = res.sandboxes.filter((s) => s.state !== 'running');
    progress.done(`${res.sandboxes.length - failed.length} of ${n} running`);
    for (const w of res.warnings) ctx.err(`warning: ${w}\n`);
    if (values.json) ctx.out(`${JSON.stringify(res, null, 2)}\n`);
    else for (const s of res.sandboxes) ctx.out(s.state === 'running' ? `${s.id}\n` : '');
    for (const s of failed) ctx.err(`forkd ${ctx.name}: ${s.id} ${s.state}: ${s.reason ?? 'no reason given'}\n`);
    return failed.length > 0 ? EXIT_FAILURE : EXIT_OK;
  },
};
