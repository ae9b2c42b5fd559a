// `forkd branch <id> [--tag T]`: save a running sandbox as a new snapshot (BRANCH) through
// the daemon; prints the new tag (or --json). Needs a daemon with POST /v1/sandboxes/{id}/branch.
import { DOWNTIME_MS_RANGE } from '../../vmm/live-migrate.js';
import { parseArgs } from 'node:util';
import { ForkdError } from '../../lib/errors.js';
import { intFlag } from '../args.js';
import { createProgress } from '../progress.js';
import { EXIT_OK, type Command } from '../command.js';
import { CLIENT_FLAGS, CLIENT_USAGE, daemonCommand, openController } from './daemon-client.js';

export const branchCommand: Command = {
  name: 'branch',
  summary: 'Daemon: snapshot a running sandbox as a new tag (BRANCH); the sandbox keeps running',
  usage: `branch ID [--tag TAG] [--no-wait] [--downtime-ms MS] [--json] ${CLIENT_USAGE}`,
  run: (argv, ctx) =>
    daemonCommand('branch', ctx, async () => {
      const { values, positionals } = parseArgs({
        args: argv,
        strict: true,
        allowPositionals: true,
        options: {
          tag: { type: 'string' },
          'no-wait': { type: 'boolean', default: false },
          'downtime-ms': { type: 'string' },
          json: { type: 'boolean', default: false },
          ...CLIENT_FLAGS,
        },
      });
      const [id, ...extra] = positionals;
      if (id === undefined || extra.length > 0)
        throw new ForkdError('invalid_argument', 'usage: forkd branch ID [--tag TAG]');
      const c = await openController(values);
      const progress = createProgress(ctx, !values.json || ctx.interactive);
      progress.step(`branching ${id}`);
      const r = await c.branch(id, {
        ...(values.tag !== undefined ? { tag: values.tag } : {}),
        wait: !values['no-wait'],
        ...(values['downtime-ms'] !== undefined
          ? { downtime_ms: intFlag('downtime-ms', values['downtime-ms'], DOWNTIME_MS_RANGE.default, DOWNTIME_MS_RANGE) }
          : {}),
      });
      progress.done(`branch ${r.tag} ${r.status}`);
      ctx.out(values.json ? `${JSON.stringify(r, null, 2)}\n` : `${r.tag}\n`);
      return EXIT_OK;
    }),
};
