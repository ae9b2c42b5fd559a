// `forkd ls`: the daemon's sandboxes, oldest first (a table, or --json).
import { parseArgs } from 'node:util';
import { ForkdError } from '../../lib/errors.js';
import type { SandboxState } from '../../sdk/index.js';
import { formatAge } from '../args.js';
import { EXIT_OK, type Command } from '../command.js';
import { CLIENT_FLAGS, CLIENT_USAGE, daemonCommand, openController, table } from './daemon-client.js';

const STATES = ['creating', 'running', 'stopping', 'stopped', 'failed'];

export const lsCommand: Command = {
  name: 'ls',
  summary: 'Daemon: list sandboxes (ID, STATE, SNAPSHOT, PID, CREATED)',
  usage: `ls [--tag TAG] [--state STATE] [--json] ${CLIENT_USAGE}`,
  run: (argv, ctx) =>
    daemonCommand('ls', ctx, async () => {
      const { values } = parseArgs({
        args: argv,
        strict: true,
        allowPositionals: false,
        options: {
          tag: { type: 'string' },
          state: { type: 'string' },
          json: { type: 'boolean', default: false },
          ...CLIENT_FLAGS,
        },
      });
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
    }),
};
