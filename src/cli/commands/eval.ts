// `forkd eval <id> CODE [--language js|python]`: evaluate in a sandbox; prints the value as
// JSON (the guest's stdout/stderr go to ours); exit 1 when the code threw.
import { parseArgs } from 'node:util';
import { ForkdError } from '../../lib/errors.js';
import { Sandbox } from '../../sdk/index.js';
import { intFlag } from '../args.js';
import { EXIT_FAILURE, EXIT_OK, type Command } from '../command.js';
import { CLIENT_FLAGS, CLIENT_USAGE, daemonCommand, openController } from './daemon-client.js';

export const evalCommand: Command = {
  name: 'eval',
  summary: 'Daemon: evaluate JS (persistent context) or Python in a sandbox, print the value as JSON',
  usage: `eval ID CODE [--language js|python] [--timeout-secs 30] [--json] ${CLIENT_USAGE}`,
  run: (argv, ctx) =>
    daemonCommand('eval', ctx, async () => {
      const { values, positionals } = parseArgs({
        args: argv,
        strict: true,
        allowPositionals: true,
        options: {
          language: { type: 'string', default: 'js' },
          'timeout-secs': { type: 'string' },
          json: { type: 'boolean', default: false },
          ...CLIENT_FLAGS,
        },
      });
      const [id, code, ...extra] = positionals;
      if (id === undefined || code === undefined || extra.length > 0)
        throw new ForkdError('invalid_argument', 'usage: forkd eval ID CODE (quote the code as one argument)');
      if (values.language !== 'js' && values.language !== 'python')
        throw new ForkdError(
          'invalid_argument',
          `--language must be js or python, got ${JSON.stringify(values.language)}`,
        );
      const timeoutSecs = intFlag('timeout-secs', values['timeout-secs'], 30, { min: 1, max: 3600 });
      const sb = await Sandbox.connect(id, { controller: await openController(values) });
      const r = await sb.eval(code, { language: values.language, timeoutSecs });
      if (values.json) {
        ctx.out(`${JSON.stringify(r, null, 2)}\n`);
        return r.error ? EXIT_FAILURE : EXIT_OK;
      }
      if (r.stdout) ctx.err(r.stdout);
      if (r.stderr) ctx.err(r.stderr);
      if (r.error) {
        ctx.err(`forkd eval: ${r.error.name}: ${r.error.message}\n`);
        return EXIT_FAILURE;
      }
      ctx.out(`${JSON.stringify(r.value ?? null)}\n`);
      return EXIT_OK;
    }),
};
