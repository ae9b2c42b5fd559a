// `forkd spawn --tag T -n N`: restore N sandboxes of a snapshot in the daemon; prints one id a
// line (or --json), and a warning line per daemon warning on stderr.
import { parseArgs } from 'node:util';
import { ForkdError } from '../../lib/errors.js';
import { intFlag } from '../args.js';
import { createProgress } from '../progress.js';
import { EXIT_FAILURE, EXIT_OK, type Command } from '../command.js';
import { CLIENT_FLAGS, CLIENT_USAGE, daemonCommand, openController } from './daemon-client.js';

export const spawnCommand: Command = {
  name: 'spawn',
  summary: 'Daemon: start N sandboxes from a snapshot (prints their ids)',
  usage: `spawn --tag TAG [-n 1] [--ttl-secs S] [--memory-limit-mib M] [--meta KEY=VALUE]... [--json] ${CLIENT_USAGE}`,
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
              memory_limit_mib: intFlag('memory-limit-mib', values['memory-limit-mib'], 0, { min: 64, max: 1_048_576 }),
            }
          : {}),
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
