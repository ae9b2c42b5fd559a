// `forkd quickstart`: the whole story in one command. Setup (idempotent), a snapshot of the
// default image (reused when present), fork 10 children, run a command in each, summary.
import { parseArgs } from 'node:util';
import { loadLocalConfig } from '../../lib/config.js';
import { assertTag } from '../../lib/tag.js';
import { DataPaths } from '../../core/paths.js';
import { listSnapshots } from '../../core/snapshot-store.js';
import { FORK_N_RANGE } from '../../core/fork.js';
import { intFlag } from '../args.js';
import { EXIT_OK, type Command } from '../command.js';
import { setupCommand } from './setup.js';
import { snapshotCommand } from './snapshot.js';
import { forkCommand } from './fork.js';

export const quickstartCommand: Command = {
  name: 'quickstart',
  summary: 'Set up the host, snapshot the default image, fork 10 children and run a command in each',
  usage: 'quickstart [-n 10] [--tag quickstart] [--data-dir DIR] [--json]',
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        n: { type: 'string', short: 'n' },
        tag: { type: 'string', default: 'quickstart' },
        'data-dir': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    const n = intFlag('n', values.n, 10, FORK_N_RANGE);
    const tag = assertTag(values.tag, 'snapshot tag');
    const dirArgs = values['data-dir'] ? ['--data-dir', values['data-dir']] : [];
    ctx.err('== 1/3 setup\n');
    let code = await setupCommand.run([...dirArgs], ctx);
    if (code !== EXIT_OK) return code;
    const paths = new DataPaths(loadLocalConfig({ dataDir: values['data-dir'] }).dataDir);
    const existing = (await listSnapshots(paths)).find((s) => s.tag === tag && s.meta);
    if (existing) {
      ctx.err(`== 2/3 snapshot ${tag} exists; reusing it (forkd rmi ${tag} to rebuild)\n`);
    } else {
      ctx.err(`== 2/3 snapshot ${tag}\n`);
      code = await snapshotCommand.run(['--tag', tag, '--warmup', 'node -e "require(\'crypto\')"', ...dirArgs], ctx);
      if (code !== EXIT_OK) return code;
    }
    ctx.err(`== 3/3 fork ${n} children and run a command in each\n`);
    return forkCommand.run(
      [
        '--tag',
        tag,
        '-n',
        String(n),
        '--exec',
        'echo "hello from $(hostname): $(head -c 6 /dev/urandom | od -An -tx1 | tr -d " ")"',
        ...dirArgs,
        ...(values.json ? ['--json'] : []),
      ],
      ctx,
    );
  },
};
