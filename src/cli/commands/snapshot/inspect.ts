// `forkd snapshot inspect TAG`: one snapshot in detail, as a `key: value` table or --json.
// Local mode adds what snapshot.json records (QEMU version, device layout, kernel command line,
// warm-up commands, file digests); daemon mode shows the daemon's record.
import { loadLocalConfig } from '../../../lib/config.js';
import { ForkdError } from '../../../lib/errors.js';
import { assertTag } from '../../../lib/tag.js';
import { DataPaths } from '../../../core/paths.js';
import { listSnapshots } from '../../../core/snapshot-store.js';
import { EXIT_OK, type Command } from '../../command.js';
import { fieldTable, openController, parseModeFlags } from '../../daemon.js';
import { clientFlags, JSON_FLAG, LOCAL_DATA_DIR_FLAG, type FlagValues } from '../../flags.js';
import { localRow, parentMap } from './ls.js';

const FLAGS = { json: JSON_FLAG, 'data-dir': LOCAL_DATA_DIR_FLAG, ...clientFlags() } as const;

export const snapshotInspectCommand: Command = {
  name: 'snapshot inspect',
  group: 'snapshots',
  modes: 'both',
  summary: 'Show one snapshot: status, image, layout, sizes, lineage, sandboxes using it',
  usage: ['snapshot inspect TAG [--json] [flags]'],
  flags: FLAGS,
  examples: ['forkd snapshot inspect py', 'forkd snapshot inspect py --json --url http://127.0.0.1:8889'],
  async run(argv, ctx) {
    const { values, positionals, mode } = parseModeFlags(ctx, argv, FLAGS, { positionals: true });
    const [tag, ...extra] = positionals;
    if (tag === undefined || extra.length > 0)
      throw new ForkdError('invalid_argument', `usage: forkd ${ctx.name} TAG (one snapshot tag)`);
    const record =
      mode === 'local' ? await inspectHere(values, tag) : await (await openController(values)).snapshots.get(tag);
    ctx.out(values.json ? `${JSON.stringify(record, null, 2)}\n` : fieldTable(record as Record<string, unknown>));
    return EXIT_OK;
  },
};

async function inspectHere(values: FlagValues<typeof FLAGS>, raw: string): Promise<Record<string, unknown>> {
  const tag = assertTag(raw, 'snapshot tag');
  const list = await listSnapshots(new DataPaths(loadLocalConfig({ dataDir: values['data-dir'] }).dataDir));
  const s = list.find((x) => x.tag === tag);
  if (!s) throw new ForkdError('not_found', `snapshot ${tag} not found; list snapshots with: forkd snapshot ls`);
  const m = s.meta;
  return {
    ...localRow(s, parentMap(list)),
    qemuVersion: m?.qemuVersion ?? null,
    forkdVersion: m?.forkdVersion ?? null,
    layout: m?.layout ?? null,
    kernelCmdline: m?.kernelCmdline ?? null,
    imageId: m?.image.id ?? null,
    pythonPreload: m?.image.pythonPreload ?? null,
    warmup: m?.warmup ?? null,
    branchedFrom: m?.branchedFrom ?? null,
    files: m?.files ?? null,
  };
}
