// `forkd quickstart`: the whole story in one command. Setup (idempotent), a snapshot of the
// default image (reused when present), fork 10 children, run a command in each, summary.
// Always on this host: the snapshot and the fork are pinned to local mode.
import { loadLocalConfig } from '../../lib/config.js';
import { assertTag } from '../../lib/tag.js';
import { DataPaths } from '../../core/paths.js';
import { listSnapshots, removeSnapshot } from '../../core/snapshot-store.js';
import { FORK_N_RANGE } from '../../lib/contract.js';
import { intFlag } from '../args.js';
import { EXIT_OK, type Command } from '../command.js';
import { DATA_DIR_FLAG, JSON_FLAG, parseFlags } from '../flags.js';
import { setupCommand } from './setup.js';
import { snapshotCreateCommand } from './snapshot/create.js';
import { sandboxRunCommand } from './sandbox/run.js';

const FLAGS = {
  n: { type: 'string', short: 'n', value: 'N', default: '10', help: 'how many children to fork' },
  tag: { type: 'string', value: 'TAG', default: 'quickstart', help: 'snapshot to create or reuse' },
  'data-dir': DATA_DIR_FLAG,
  json: JSON_FLAG,
} as const;

/**
 * What every child runs: its own hostname and a random UUID from its kernel, to show they are
 * its own. Shell builtins only (`read` from /proc), so a child starts one process, not five:
 * under TCG each new program is translated afresh in every child (bench/results/fork.md
 * measures this command beside the pipeline it replaced).
 */
export const QUICKSTART_EXEC =
  'read -r h </proc/sys/kernel/hostname; read -r u </proc/sys/kernel/random/uuid; echo "hello from $h: $u"';

export const quickstartCommand: Command = {
  name: 'quickstart',
  group: 'host',
  modes: 'host',
  summary: 'Set up the host, snapshot the default image, fork 10 children and run a command in each',
  usage: ['quickstart [-n N] [--tag TAG] [--data-dir DIR] [--json]'],
  flags: FLAGS,
  examples: ['sudo forkd quickstart', 'sudo forkd quickstart -n 50 --json'],
  notes: ['Runs forkd setup, forkd snapshot create (unless the tag exists) and forkd sandbox run on this host.'],
  async run(argv, parent) {
    const { values } = parseFlags(argv, FLAGS);
    const n = intFlag('n', values.n, 10, FORK_N_RANGE);
    const tag = assertTag(values.tag ?? 'quickstart', 'snapshot tag');
    const dirArgs = values['data-dir'] ? ['--data-dir', values['data-dir']] : [];
    const ctx = { ...parent, pinnedMode: 'local' as const };
    ctx.err('== 1/3 setup\n');
    let code = await setupCommand.run([...dirArgs], ctx);
    if (code !== EXIT_OK) return code;
    const paths = new DataPaths(loadLocalConfig({ dataDir: values['data-dir'] }).dataDir);
    const listed = (await listSnapshots(paths)).find((s) => s.tag === tag);
    if (listed && !listed.meta) {
      // The quickstart's own snapshot, unusable (typically made by an older forkd whose guest
      // agent this one no longer speaks): rebuilt rather than left in the way.
      ctx.err(`== snapshot ${tag} cannot be used (${listed.error ?? 'unreadable'}); re-creating it\n`);
      await removeSnapshot(paths, tag);
    }
    const existing = listed?.meta ? listed : undefined;
    if (existing) {
      ctx.err(`== 2/3 snapshot ${tag} exists; reusing it (forkd snapshot rm ${tag} to rebuild)\n`);
    } else {
      ctx.err(`== 2/3 snapshot ${tag}\n`);
      code = await snapshotCreateCommand.run(['--tag', tag, ...dirArgs], ctx);
      if (code !== EXIT_OK) return code;
    }
    ctx.err(`== 3/3 fork ${n} children and run a command in each\n`);
    return sandboxRunCommand.run(
      ['--tag', tag, '-n', String(n), '--exec', QUICKSTART_EXEC, ...dirArgs, ...(values.json ? ['--json'] : [])],
      ctx,
    );
  },
};
