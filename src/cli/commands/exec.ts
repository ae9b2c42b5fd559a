// `forkd exec <id> -- CMD [ARG...]`: run argv in a sandbox (no shell: use `-- sh -c '...'`
// for one), stream its output as it comes, exit with the guest's exit code (124 when the
// timeout killed it, 128+n for a signal).
import { parseArgs } from 'node:util';
import { constants } from 'node:os';
import { ForkdError } from '../../lib/errors.js';
import { Sandbox } from '../../sdk/index.js';
import { intFlag } from '../args.js';
import type { Command } from '../command.js';
import { CLIENT_FLAGS, CLIENT_USAGE, daemonCommand, openController } from './daemon-client.js';

export const execCommand: Command = {
  name: 'exec',
  summary: "Daemon: run a command in a sandbox, stream its output, exit with the guest's exit code",
  usage: `exec ID [--timeout-secs 60] [--cwd DIR] [--env K=V]... ${CLIENT_USAGE} -- CMD [ARG...]`,
  run: (argv, ctx) =>
    daemonCommand('exec', ctx, async () => {
      const { values, positionals } = parseArgs({
        args: argv,
        strict: true,
        allowPositionals: true,
        options: {
          'timeout-secs': { type: 'string' },
          cwd: { type: 'string' },
          env: { type: 'string', multiple: true },
          ...CLIENT_FLAGS,
        },
      });
      const [id, ...cmd] = positionals;
      if (id === undefined || cmd.length === 0)
        throw new ForkdError('invalid_argument', 'usage: forkd exec ID -- CMD [ARG...]');
      const env: Record<string, string> = {};
      for (const kv of values.env ?? []) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new ForkdError('invalid_argument', `--env must be K=V, got ${JSON.stringify(kv)}`);
        env[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      const timeoutSecs = intFlag('timeout-secs', values['timeout-secs'], 60, { min: 1, max: 86_400 });
      const controller = await openController(values);
      const sb = await Sandbox.connect(id, { controller });
      const r = await sb.commands.run(cmd, {
        timeoutMs: timeoutSecs * 1000,
        onStdout: (d) => ctx.out(d),
        onStderr: (d) => ctx.err(d),
        ...(values.cwd !== undefined ? { cwd: values.cwd } : {}),
        ...(values.env ? { env } : {}),
      });
      if (r.timedOut) {
        ctx.err(`forkd exec: timed out after ${timeoutSecs} s (process group killed)\n`);
        return 124;
      }
      if (r.exitCode !== null) return r.exitCode;
      const signo = r.signal ? (constants.signals as Record<string, number>)[r.signal] : undefined;
      return 128 + (signo ?? 0);
    }),
};
