// `forkd sandbox branch ID [--tag T]`: save a running sandbox as a new snapshot (BRANCH) through
// the daemon; prints the new tag (or --json). The sandbox keeps running.
import { DOWNTIME_MS_RANGE } from '../../../lib/contract.js';
import { ForkdError } from '../../../lib/errors.js';
import { intFlag } from '../../args.js';
import { EXIT_OK, type Command } from '../../command.js';
import { openController } from '../../daemon.js';
import { clientFlags, JSON_FLAG, parseFlags } from '../../flags.js';
import { createProgress } from '../../progress.js';
import { SPAWN_TIMEOUT_SECS } from './spawn.js';

const FLAGS = {
  tag: { type: 'string', value: 'TAG', default: 'branch-ID-N', help: 'tag of the new snapshot' },
  'no-wait': { type: 'boolean', help: 'return once the sandbox runs again, before the snapshot is written' },
  'downtime-ms': {
    type: 'string',
    value: 'MS',
    default: String(DOWNTIME_MS_RANGE.default),
    help: `longest pause of the sandbox during the live copy, ${DOWNTIME_MS_RANGE.min} to ${DOWNTIME_MS_RANGE.max}`,
  },
  json: JSON_FLAG,
  ...clientFlags(SPAWN_TIMEOUT_SECS),
} as const;

export const sandboxBranchCommand: Command = {
  name: 'sandbox branch',
  group: 'sandboxes',
  modes: 'daemon',
  summary: 'Save a running sandbox as a new snapshot (BRANCH); the sandbox keeps running',
  usage: ['sandbox branch ID [--tag TAG] [flags]'],
  flags: FLAGS,
  examples: [
    'forkd sandbox branch sb-abcdefghijklmnop --tag after-setup',
    'forkd sandbox spawn --tag after-setup -n 8',
  ],
  notes: ['Prints the new tag (or --json); spawn sandboxes from it like from any snapshot.'],
  async run(argv, ctx) {
    const { values, positionals } = parseFlags(argv, FLAGS, { positionals: true });
    const [id, ...extra] = positionals;
    if (id === undefined || extra.length > 0)
      throw new ForkdError('invalid_argument', `usage: forkd ${ctx.name} ID [--tag TAG]`);
    const c = await openController(values, SPAWN_TIMEOUT_SECS);
    const progress = createProgress(ctx, !values.json || ctx.interactive);
    progress.step(`branching ${id}`);
    const r = await c.branch(
      id,
      {
        ...(values.tag !== undefined ? { tag: values.tag } : {}),
        wait: !values['no-wait'],
        ...(values['downtime-ms'] !== undefined
          ? { downtime_ms: intFlag('downtime-ms', values['downtime-ms'], DOWNTIME_MS_RANGE.default, DOWNTIME_MS_RANGE) }
          : {}),
      },
      { timeoutMs: c.transport.defaultTimeoutMs },
    );
    progress.done(`branch ${r.tag} ${r.status}`);
    ctx.out(values.json ? `${JSON.stringify(r, null, 2)}\n` : `${r.tag}\n`);
    return EXIT_OK;
  },
};
