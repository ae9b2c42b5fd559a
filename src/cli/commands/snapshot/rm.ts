// `forkd snapshot rm TAG...`: remove snapshots. Refused while a running sandbox uses one, or
// while another snapshot names one as its parentTag, unless --cascade (remove those too) or
// --force (orphan them): the same dependents rule here and in the daemon.
import { loadLocalConfig } from '../../../lib/config.js';
import { ForkdError } from '../../../lib/errors.js';
import { assertTag } from '../../../lib/tag.js';
import { DataPaths } from '../../../core/paths.js';
import { dependentsOf, removalOrder, type ParentMap } from '../../../core/lineage.js';
import { listSnapshots, removeSnapshot } from '../../../core/snapshot-store.js';
import { EXIT_OK, type CliContext, type Command } from '../../command.js';
import { openController, parseModeFlags } from '../../daemon.js';
import { clientFlags, JSON_FLAG, LOCAL_DATA_DIR_FLAG, type FlagValues } from '../../flags.js';
import { parentMap } from './ls.js';

const FLAGS = {
  cascade: { type: 'boolean', help: 'also remove the snapshots that descend from it' },
  force: { type: 'boolean', help: 'remove it even though others descend from it (they are orphaned)' },
  'data-dir': LOCAL_DATA_DIR_FLAG,
  json: JSON_FLAG,
  ...clientFlags(),
} as const;

type Values = FlagValues<typeof FLAGS>;

export const snapshotRmCommand: Command = {
  name: 'snapshot rm',
  group: 'snapshots',
  modes: 'both',
  summary: 'Remove snapshots (refused while a sandbox uses one, or another snapshot descends from one)',
  usage: ['snapshot rm TAG... [--cascade | --force] [flags]'],
  flags: FLAGS,
  examples: ['forkd snapshot rm py', 'forkd snapshot rm base --cascade'],
  notes: ['Prints one line per removed snapshot, children before their parents; --json: {"deleted": [tags]}.'],
  async run(argv, ctx) {
    const { values, positionals, mode } = parseModeFlags(ctx, argv, FLAGS, { positionals: true });
    if (positionals.length === 0) throw new ForkdError('invalid_argument', 'give at least one snapshot tag');
    if (values.cascade && values.force) throw new ForkdError('invalid_argument', 'give --cascade or --force, not both');
    return mode === 'local' ? removeHere(values, positionals, ctx) : removeInDaemon(values, positionals, ctx);
  },
};

/** Every snapshot descending from `tags`, transitively (cycle-safe: each tag is visited once). */
function descendantsOf(tags: readonly string[], parentOf: ParentMap): string[] {
  const out = new Set(tags);
  for (const t of out) for (const d of dependentsOf(t, parentOf)) out.add(d);
  return [...out];
}

async function removeHere(values: Values, names: string[], ctx: CliContext): Promise<number> {
  const paths = new DataPaths(loadLocalConfig({ dataDir: values['data-dir'] }).dataDir);
  const named = names.map((t) => assertTag(t, 'snapshot tag'));
  const parentOf = parentMap(await listSnapshots(paths));
  const tags = values.cascade ? descendantsOf(named, parentOf) : named;
  // Checked for the whole batch before anything is removed; children in the batch go first.
  const orphans = new Map<string, string[]>();
  for (const tag of tags) {
    const outside = dependentsOf(tag, parentOf).filter((d) => !tags.includes(d));
    if (outside.length === 0) continue;
    if (!values.force) {
      throw new ForkdError(
        'conflict',
        `snapshot ${tag} is the parent of ${outside.join(', ')}; remove them too (forkd snapshot rm ${[tag, ...outside].join(' ')} or --cascade), or pass --force to orphan them`,
      );
    }
    orphans.set(tag, outside);
  }
  const deleted: string[] = [];
  for (const tag of removalOrder(tags, parentOf)) {
    await removeSnapshot(paths, tag);
    deleted.push(tag);
    const orphaned = orphans.get(tag);
    if (!values.json) ctx.out(`removed ${tag}${orphaned ? ` (orphaned: ${orphaned.join(', ')})` : ''}\n`);
  }
  if (values.json) ctx.out(`${JSON.stringify({ deleted }, null, 2)}\n`);
  return EXIT_OK;
}

async function removeInDaemon(values: Values, tags: string[], ctx: CliContext): Promise<number> {
  const c = await openController(values);
  const deleted: string[] = [];
  for (const tag of tags)
    deleted.push(...(await c.snapshots.delete(tag, { cascade: values.cascade, force: values.force })));
  ctx.out(values.json ? `${JSON.stringify({ deleted }, null, 2)}\n` : deleted.map((t) => `deleted ${t}\n`).join(''));
  return EXIT_OK;
}
