// `forkd sandbox ls`: the daemon's sandboxes, oldest first (a table, or --json).
import { ForkdError } from '../../../lib/errors.js';
import type { SandboxState } from 'forkd';
import { formatAge } from '../../args.js';
import { EXIT_OK, type Command } from '../../command.js';
import { openController, table } from '../../daemon.js';
import { clientFlags, JSON_FLAG, parseFlags } from '../../flags.js';

const STATES = ['creating', 'running', 'stopping', 'stopped', 'failed'];

const FLAGS = {
  tag: { type: 'string', value: 'TAG', help: 'only the sandboxes of this snapshot' },
  state: { type: 'string', value: 'STATE', help: `only those in this state: ${STATES.join(', ')}` },
  json: JSON_FLAG,
  ...clientFlags(),
} as const;

export const sandboxLsCommand: Command = {
  name: 'sandbox ls',
  group: 'sandboxes',
  modes: 'daemon',
  summary: "List the daemon's sandboxes (ID, STATE, SNAPSHOT, PID, CREATED)",
  usage: ['sandbox ls [--tag TAG] [--state STATE] [--json] [flags]'],
  flags: FLAGS,
  examples: ['forkd sandbox ls', 'forkd sandbox ls --tag py --state running --json'],
  async run(argv, ctx) {
    const { values } = parseFlags(argv, FLAGS);
    if (values.state !== undefined && !STATES.includes(values.state))
      throw new ForkdError(
        'invalid_argument',
        `--state must be one of ${STATES.join(', ')}, got ${JSON.stringify(values.state)}`,
      );
    const c = await openController(values);
    const list = await c.sandboxes.list({
      ...(values.tag !== undefined ? { snapshotTag: values.tag } : {}),
      ...(values.state !== undefined ? { state: values.state as SandboxState } : {}),
    });
    if (values.json) {
      ctx.out(`${JSON.stringify({ sandboxes: list }, null, 2)}\n`);
      return EXIT_OK;
    }
    ctx.out(
      table([
        ['ID', 'STATE', 'SNAPSHOT', 'PID', 'CREATED'],
        ...list.map((s) => [
          s.id,
          s.state,
          s.snapshot_tag,
          s.pid === null ? '-' : String(s.pid),
          formatAge(new Date(s.created_at)),
        ]),
      ]),
    );
    return EXIT_OK;
  },
};
