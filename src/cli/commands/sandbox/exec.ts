// `forkd sandbox exec ID -- CMD [ARG...]`: run argv in a sandbox (no shell: use `-- sh -c '...'`
// for one), stream its output as it comes, exit with the guest's exit code (124 when the
// timeout killed it, 128+n for a signal).
import { constants } from 'node:os';
import { ForkdError } from '../../../lib/errors.js';
import { Sandbox } from 'forkd';
import { intFlag } from '../../args.js';
import type { Command } from '../../command.js';
import { openController } from '../../daemon.js';
import { clientFlags, parseFlags } from '../../flags.js';
import { EXEC_TIMEOUT_SECS } from '../../../lib/contract.js';

const FLAGS = {
  'timeout-secs': {
    type: 'string',
    value: 'SECS',
    default: String(EXEC_TIMEOUT_SECS.default),
    help: `kill the command's process group in the guest after this long (exit 124), ${EXEC_TIMEOUT_SECS.min} to ${EXEC_TIMEOUT_SECS.max}`,
  },
  cwd: { type: 'string', value: 'DIR', help: 'working directory in the guest' },
  env: { type: 'string', value: 'K=V', multiple: true, help: "added to the command's environment" },
  ...clientFlags(),
} as const;

export const sandboxExecCommand: Command = {
  name: 'sandbox exec',
  group: 'sandboxes',
  modes: 'daemon',
  summary: "Run a command in a sandbox, stream its output, exit with the guest's exit code",
  usage: ['sandbox exec ID [flags] -- CMD [ARG...]'],
  flags: FLAGS,
  examples: [
    'forkd sandbox exec sb-abcdefghijklmnop -- python3 -c "print(6 * 7)"',
    "forkd sandbox exec sb-abcdefghijklmnop --env MODE=fast -- sh -c 'make test 2>&1 | tail'",
  ],
  notes: [
    "The words after -- are the guest's argv, verbatim (no shell). --timeout bounds finding the sandbox; the output then streams for up to --timeout-secs plus 30 s.",
  ],
  async run(argv, ctx) {
    const { values, positionals } = parseFlags(argv, FLAGS, { positionals: true });
    const [id, ...cmd] = positionals;
    if (id === undefined || cmd.length === 0)
      throw new ForkdError('invalid_argument', `usage: forkd ${ctx.name} ID -- CMD [ARG...]`);
    const env: Record<string, string> = {};
    for (const kv of values.env ?? []) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new ForkdError('invalid_argument', `--env must be K=V, got ${JSON.stringify(kv)}`);
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    const timeoutSecs = intFlag('timeout-secs', values['timeout-secs'], EXEC_TIMEOUT_SECS.default, EXEC_TIMEOUT_SECS);
    const controller = await openController(values);
    const sb = await Sandbox.connect(id, { controller });
    const r = await sb.commands.run(cmd, {
      timeoutMs: timeoutSecs * 1000,
      onStdout: (d) => ctx.out(d),
      onStderr: (d) => ctx.err(d),
      ...(values.cwd !== undefined ? { cwd: values.cwd } : {}),
      ...(values.env ? { envs: env } : {}),
      // The CLI exits with the guest's code; a non-zero one is an answer, not an error.
      throwOnNonZeroExit: false,
    });
    if (r.timedOut) {
      ctx.err(`forkd ${ctx.name}: timed out after ${timeoutSecs} s (process group killed)\n`);
      return 124;
    }
    if (r.exitCode !== null) return r.exitCode;
    const signo = r.signal ? (constants.signals as Record<string, number>)[r.signal] : undefined;
    return 128 + (signo ?? 0);
  },
};
