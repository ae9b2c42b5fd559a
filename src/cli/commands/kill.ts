// `forkd kill <id...> | --all | --tag T`: stop and remove sandboxes in the daemon; prints
// `killed <id>` per sandbox. A sandbox that is already gone is an error only when named.
import { parseArgs } from 'node:util';
import { ForkdError } from '../../lib/errors.js';
import { ForkdApiError } from '../../sdk/index.js';
import { EXIT_FAILURE, EXIT_OK, type Command } from '../command.js';
import { CLIENT_FLAGS, CLIENT_USAGE, daemonCommand, describeApiError, openController } from './daemon-client.js';

export const killCommand: Command = {
  name: 'kill',
  summary: 'Daemon: stop and remove sandboxes by id, all of them, or those of a snapshot',
  usage: `kill ID... | --all | --tag TAG ${CLIENT_USAGE}`,
  run: (argv, ctx) =>
    daemonCommand('kill', ctx, async () => {
      const { values, positionals } = parseArgs({
        args: argv,
        strict: true,
        allowPositionals: true,
        options: { all: { type: 'boolean', default: false }, tag: { type: 'string' }, ...CLIENT_FLAGS },
      });
      const modes = [positionals.length > 0, values.all, values.tag !== undefined].filter(Boolean).length;
      if (modes !== 1) throw new ForkdError('invalid_argument', 'give sandbox ids, --all or --tag TAG (one of them)');
      const c = await openController(values);
      const ids =
        positionals.length > 0
          ? positionals
          : (await c.sandboxes.list(values.tag !== undefined ? { snapshotTag: values.tag } : {}))
              .filter((s) => s.state !== 'creating')
              .map((s) => s.id);
      let failed = 0;
      // Sequential: the daemon tears each QEMU down; no need to pile requests on it.
      for (const id of ids) {
        try {
          await c.sandboxes.kill(id);
          ctx.out(`killed ${id}\n`);
        } catch (err) {
          if (!(err instanceof ForkdApiError)) throw err;
          if (positionals.length === 0 && err.code === 'not_found') continue; // went away meanwhile
          if (err.code === 'unreachable' || err.code === 'unauthorized') throw err;
          ctx.err(`forkd kill: ${id}: ${describeApiError(err)}\n`);
          failed++;
        }
      }
      return failed > 0 ? EXIT_FAILURE : EXIT_OK;
    }),
};
