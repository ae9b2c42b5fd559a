// `forkd snapshot ls`: the snapshots, with sizes, guest RAM, image, age, lineage and users.
// Local mode reads this host's data dir; daemon mode asks the daemon (which also knows builds
// in progress). `localRow` is the JSON of one local snapshot, shared with `snapshot inspect`.
import { loadLocalConfig } from '../../../lib/config.js';
import { DataPaths } from '../../../core/paths.js';
import { ancestorsOf, dependentsOf, type ParentMap } from '../../../core/lineage.js';
import { listSnapshots, type SnapshotListing } from '../../../core/snapshot-store.js';
import { formatAge, formatMiB } from '../../args.js';
import { EXIT_OK, type CliContext, type Command } from '../../command.js';
import { openController, parseModeFlags, table } from '../../daemon.js';
import { clientFlags, JSON_FLAG, LOCAL_DATA_DIR_FLAG, type FlagValues } from '../../flags.js';

const FLAGS = { json: JSON_FLAG, 'data-dir': LOCAL_DATA_DIR_FLAG, ...clientFlags() } as const;

export const snapshotLsCommand: Command = {
  name: 'snapshot ls',
  group: 'snapshots',
  modes: 'both',
  summary: 'List snapshots: image, guest RAM, size (logical and on disk), age, lineage, sandboxes using them',
  usage: ['snapshot ls [--json] [flags]'],
  flags: FLAGS,
  examples: ['forkd snapshot ls', 'forkd snapshot ls --json --url http://127.0.0.1:8889'],
  notes: [
    'Local: TAG IMAGE RAM LOGICAL "ON DISK" CREATED PARENT CHILDREN "IN USE" (--json: an array). Daemon: TAG STATUS IMAGE MEM DISK PARENT "IN USE" CREATED (--json: {"snapshots": [...]}).',
  ],
  async run(argv, ctx) {
    const { values, mode } = parseModeFlags(ctx, argv, FLAGS);
    return mode === 'local' ? listHere(values, ctx) : listInDaemon(values, ctx);
  },
};

/** tag -> parentTag of every readable snapshot (a broken one has no known parent). */
export function parentMap(list: readonly SnapshotListing[]): Map<string, string | null> {
  return new Map(list.map((s) => [s.tag, s.meta?.parentTag ?? null]));
}

export function localRow(s: SnapshotListing, parentOf: ParentMap): Record<string, unknown> {
  return {
    tag: s.tag,
    status: s.error ? 'broken' : 'ready',
    error: s.error ?? null,
    image: s.meta?.image.name ?? null,
    memMiB: s.meta?.layout.memMiB ?? null,
    vcpus: s.meta?.layout.vcpus ?? null,
    accel: s.meta?.accel ?? null,
    parentTag: s.meta?.parentTag ?? null,
    ancestors: ancestorsOf(s.tag, parentOf),
    dependents: dependentsOf(s.tag, parentOf),
    createdAt: s.meta?.createdAt ?? null,
    logicalBytes: s.logicalBytes,
    diskBytes: s.diskBytes,
    inUseBy: s.inUseBy,
  };
}

async function listHere(values: FlagValues<typeof FLAGS>, ctx: CliContext): Promise<number> {
  const paths = new DataPaths(loadLocalConfig({ dataDir: values['data-dir'] }).dataDir);
  const list = await listSnapshots(paths);
  const parentOf = parentMap(list);
  if (values.json) {
    ctx.out(
      `${JSON.stringify(
        list.map((s) => localRow(s, parentOf)),
        null,
        2,
      )}\n`,
    );
    return EXIT_OK;
  }
  if (list.length === 0) {
    ctx.out('no snapshots; create one with: forkd snapshot create --tag NAME\n');
    return EXIT_OK;
  }
  const header = ['TAG', 'IMAGE', 'RAM', 'LOGICAL', 'ON DISK', 'CREATED', 'PARENT', 'CHILDREN', 'IN USE'];
  const rows = list.map((s) => [
    s.tag,
    s.meta?.image.name ?? `broken: ${s.error ?? ''}`.slice(0, 40),
    s.meta ? `${s.meta.layout.memMiB} MiB` : '-',
    formatMiB(s.logicalBytes),
    formatMiB(s.diskBytes),
    formatAge(s.meta ? new Date(s.meta.createdAt) : s.modifiedAt),
    s.meta?.parentTag ?? '-',
    String(dependentsOf(s.tag, parentOf).length || '-'),
    s.inUseBy.length ? String(s.inUseBy.length) : '-',
  ]);
  ctx.out(table([header, ...rows]));
  return EXIT_OK;
}

async function listInDaemon(values: FlagValues<typeof FLAGS>, ctx: CliContext): Promise<number> {
  const list = await (await openController(values)).snapshots.list();
  if (values.json) {
    ctx.out(`${JSON.stringify({ snapshots: list }, null, 2)}\n`);
    return EXIT_OK;
  }
  ctx.out(
    table([
      ['TAG', 'STATUS', 'IMAGE', 'MEM', 'DISK', 'PARENT', 'IN USE', 'CREATED'],
      ...list.map((s) => [
        s.tag,
        s.status,
        s.image ?? '-',
        s.mem_mib === null ? '-' : `${s.mem_mib} MiB`,
        formatMiB(s.disk_bytes),
        s.parent_tag ?? '-',
        String(s.in_use_by.length),
        formatAge(new Date(s.created_at)),
      ]),
    ]),
  );
  return EXIT_OK;
}
