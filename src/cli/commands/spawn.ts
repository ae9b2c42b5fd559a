// `forkd spawn --tag T -n N`: restore N sandboxes of a snapshot in the daemon; prints one id a
// line (or --json), and a warning line per daemon warning on stderr.
import { parseArgs } from 'node:util';
import { ForkdError } from '../../lib/errors.js';
import { LIMIT_RANGES } from '../../lib/limits.js';
import { parseEgressPolicy } from '../../host/nftables.js';
import type { EgressPolicy } from '../../sdk/index.js';
import { intFlag, listFlag, numberFlag } from '../args.js';
import { createProgress } from '../progress.js';
import { EXIT_FAILURE, EXIT_OK, type Command } from '../command.js';
import { CLIENT_FLAGS, CLIENT_USAGE, daemonCommand, openController } from './daemon-client.js';

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

export const spawnCommand: Command = {
  name: 'spawn',
  summary: 'Daemon: start N sandboxes from a snapshot (prints their ids)',
  usage: `spawn --tag TAG [-n 1] [--ttl-secs S] [--memory-limit-mib M] [--cpu-limit CPUS] [--pids-limit N] [--per-child-netns] [--egress allow|deny|CIDR[,CIDR...]] [--meta KEY=VALUE]... [--json] ${CLIENT_USAGE}

  --cpu-limit CPUS    CPU quota of each sandbox's cgroup, in CPUs (0.5 = half of one)
  --pids-limit N      pids.max of each sandbox's cgroup (QEMU's threads, not guest processes; >= 16)
  --per-child-netns   each sandbox in its own network namespace; egress per the daemon's
                      --default-egress (deny unless set)
  --egress POLICY     allow, deny, or a comma-separated list of IPv4 CIDRs (the allow-list);
                      implies --per-child-netns`,
  run: (argv, ctx) =>
    daemonCommand('spawn', ctx, async () => {
      const { values } = parseArgs({
        args: argv,
        strict: true,
        allowPositionals: false,
        options: {
          tag: { type: 'string' },
          n: { type: 'string', short: 'n' },
          'ttl-secs': { type: 'string' },
          'memory-limit-mib': { type: 'string' },
          'cpu-limit': { type: 'string' },
          'pids-limit': { type: 'string' },
          'per-child-netns': { type: 'boolean', default: false },
          egress: { type: 'string' },
          meta: { type: 'string', multiple: true },
          json: { type: 'boolean', default: false },
          ...CLIENT_FLAGS,
        },
      });
      if (values.tag === undefined) throw new ForkdError('invalid_argument', '--tag is required');
      const n = intFlag('n', values.n, 1, { min: 1, max: 1000 });
      const metadata: Record<string, string> = {};
      for (const kv of values.meta ?? []) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new ForkdError('invalid_argument', `--meta must be KEY=VALUE, got ${JSON.stringify(kv)}`);
        metadata[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      const cpuLimit = numberFlag('cpu-limit', values['cpu-limit'], LIMIT_RANGES.cpuLimit);
      const egress = egressFlag(values.egress);
      const c = await openController(values);
      const progress = createProgress(ctx, !values.json || ctx.interactive);
      progress.step(`spawning ${n} sandbox${n === 1 ? '' : 'es'} of ${values.tag} at ${c.url}`);
      const res = await c.sandboxes.spawn({
        snapshot_tag: values.tag,
        n,
        ...(values['ttl-secs'] !== undefined
          ? { ttl_secs: intFlag('ttl-secs', values['ttl-secs'], 0, { min: 1, max: 604_800 }) }
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
      });
      const failed = res.sandboxes.filter((s) => s.state !== 'running');
      progress.done(`${res.sandboxes.length - failed.length} of ${n} running`);
      for (const w of res.warnings) ctx.err(`warning: ${w}\n`);
      if (values.json) ctx.out(`${JSON.stringify(res, null, 2)}\n`);
      else for (const s of res.sandboxes) ctx.out(s.state === 'running' ? `${s.id}\n` : '');
      for (const s of failed) ctx.err(`forkd spawn: ${s.id} ${s.state}: ${s.reason ?? 'no reason given'}\n`);
      return failed.length > 0 ? EXIT_FAILURE : EXIT_OK;
    }),
};
