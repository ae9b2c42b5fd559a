// `forkd sandbox eval ID CODE [--language js|python]`: evaluate in a sandbox; prints the value as
// JSON (the guest's stdout/stderr go to ours); exit 1 when the code threw.
import { ForkdError } from '../../../lib/errors.js';
import { Sandbox } from 'forkd';
import { intFlag } from '../../args.js';
import { EXIT_FAILURE, EXIT_OK, type Command } from '../../command.js';
import { openController } from '../../daemon.js';
import { clientFlags, JSON_FLAG, parseFlags } from '../../flags.js';
import { EVAL_TIMEOUT_SECS } from '../../../lib/contract.js';

const FLAGS = {
  language: {
    type: 'string',
    value: 'js|python',
    default: 'js',
    help: "js: the guest's persistent JS context; python: its warm Python worker",
  },
  'timeout-secs': {
    type: 'string',
    value: 'SECS',
    default: String(EVAL_TIMEOUT_SECS.default),
    help: `bound of the evaluation in the guest, ${EVAL_TIMEOUT_SECS.min} to ${EVAL_TIMEOUT_SECS.max}`,
  },
  json: JSON_FLAG,
  ...clientFlags(),
} as const;

export const sandboxEvalCommand: Command = {
  name: 'sandbox eval',
  group: 'sandboxes',
  modes: 'daemon',
  summary: 'Evaluate JS (persistent context) or Python in a sandbox, print the value as JSON',
  usage: ['sandbox eval ID CODE [--language js|python] [flags]'],
  flags: FLAGS,
  examples: [
    "forkd sandbox eval sb-abcdefghijklmnop '[1, 2].map((v) => v * 2)'",
    "forkd sandbox eval sb-abcdefghijklmnop 'numpy.arange(3).tolist()' --language python",
  ],
  notes: ['Quote CODE as one argument. Exit 1 when it threw (its error on stderr).'],
  async run(argv, ctx) {
    const { values, positionals } = parseFlags(argv, FLAGS, { positionals: true });
    const [id, code, ...extra] = positionals;
    if (id === undefined || code === undefined || extra.length > 0)
      throw new ForkdError('invalid_argument', `usage: forkd ${ctx.name} ID CODE (quote the code as one argument)`);
    const language = values.language ?? 'js';
    if (language !== 'js' && language !== 'python')
      throw new ForkdError('invalid_argument', `--language must be js or python, got ${JSON.stringify(language)}`);
    const timeoutSecs = intFlag('timeout-secs', values['timeout-secs'], EVAL_TIMEOUT_SECS.default, EVAL_TIMEOUT_SECS);
    const sb = await Sandbox.connect(id, { controller: await openController(values) });
    const r = await sb.eval(code, { language, timeoutSecs });
    if (values.json) {
      ctx.out(`${JSON.stringify(r, null, 2)}\n`);
      return r.error ? EXIT_FAILURE : EXIT_OK;
    }
    if (r.stdout) ctx.err(r.stdout);
    if (r.stderr) ctx.err(r.stderr);
    if (r.error) {
      ctx.err(`forkd ${ctx.name}: ${r.error.name}: ${r.error.message}\n`);
      return EXIT_FAILURE;
    }
    ctx.out(`${JSON.stringify(r.value ?? null)}\n`);
    return EXIT_OK;
  },
};
