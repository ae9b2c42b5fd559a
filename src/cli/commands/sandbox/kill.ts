// `forkd sandbox kill ID... | --all | --tag T`: stop and remove sandboxes in the daemon; prints
// `killed <id>` per sandbox. A sandbox that is already gone is an error only when named.
import { ForkdError } from '../../../lib/errors.js';
import { ForkdApiError } from 'forkd';
import { EXIT_FAILURE, EXIT_OK, type Command } from '../../command.js';
import { describeApiError, openController } from '../../daemon.js';
import { clientFlags, parseFlags } from '../../flags.js';

const FLAGS = {
  all: { type: 'boolean', help: 'every sandbox of the daemon' },
  tag: { type: 'string', value: 'TAG', help: 'every sandbox of this snapshot' },
  ...clientFlags(),
} as const;

export const sandboxKillCommand: Command = {
  name: 'sandbox kill',
  group: 'sandboxes',
  modes: 'daemon',
  summary: 'Stop and remove sandboxes by id, all of them, or those of a snapshot',
  usage: ['sandbox kill ID... [flags]', 'sandbox kill --all | --tag TAG [flags]'],
  flags: FLAGS,
  examples: ['forkd sandbox kill sb-abcdefghijklmnop', 'forkd sandbox kill --tag py'],
  notes: ['Prints "killed ID" per sandbox; exit 1 when one could not be killed (a named one already gone counts).'],
  async run(argv, ctx) {
    const { values, positionals } = parseFlags(argv, FLAGS, { positionals: true });
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
        if (err.code === 'unreachable' || err.code === 'unauthorized' || err.code === 'client_timeout') throw err;
        ctx.err(`forkd ${ctx.name}: ${id}: ${describeApiError(err)}\n`);
        failed++;
      }
    }
    return failed > 0 ? EXIT_FAILURE : EXIT_OK;
  },
};
