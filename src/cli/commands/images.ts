// `forkd images`: list snapshots with their sizes, image, age, lineage and users. `forkd rmi
// TAG`: refused while another snapshot names it as parentTag, unless --force (the daemon's
// dependents rule; it also refuses while a running sandbox uses it).
import { parseArgs } from 'node:util';
import { loadLocalConfig } from '../../lib/config.js';
import { ForkdError } from '../../lib/errors.js';
import { assertTag } from '../../lib/tag.js';
import { DataPaths } from '../../core/paths.js';
import { ancestorsOf, dependentsOf, removalOrder } from '../../core/lineage.js';
import { listSnapshots, removeSnapshot, type SnapshotListing } from '../../core/snapshot-store.js';
import { formatAge, formatMiB } from '../args.js';
import { EXIT_OK, type Command } from '../command.js';

export const imagesCommand: Command = {
  name: 'images',
  summary: 'List snapshots: size (logical and on disk), guest RAM, image, age, lineage, running users',
  usage: 'images [--data-dir DIR] [--json]',
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: { 'data-dir': { type: 'string' }, json: { type: 'boolean', default: false } },
    });
    const paths = new DataPaths(loadLocalConfig({ dataDir: values['data-dir'] }).dataDir);
    const list = await listSnapshots(paths);
    const parentOf = parentMap(list);
    if (values.json) {
      const rows = list.map((s) => ({
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
      }));
      ctx.out(`${JSON.stringify(rows, null, 2)}\n`);
      return EXIT_OK;
    }
    if (list.length === 0) {
      ctx.out('no snapshots; create one with: forkd snapshot --tag NAME\n');
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
  },
};

export const rmiCommand: Command = {
  name: 'rmi',
  summary: 'Remove snapshots (refused while a running sandbox uses one, or another snapshot descends from one)',
  usage: 'rmi TAG... [--force] [--data-dir DIR]',
  async run(argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: { force: { type: 'boolean', default: false }, 'data-dir': { type: 'string' } },
    });
    if (positionals.length === 0) throw new ForkdError('invalid_argument', 'give at least one snapshot tag');
    const tags = positionals.map((t) => assertTag(t, 'snapshot tag'));
    const paths = new DataPaths(loadLocalConfig({ dataDir: values['data-dir'] }).dataDir);
    const parentOf = parentMap(await listSnapshots(paths));
    // Checked for the whole batch before anything is removed; children in the batch go first.
    const orphans = new Map<string, string[]>();
    for (const tag of tags) {
      const outside = dependentsOf(tag, parentOf).filter((d) => !tags.includes(d));
      if (outside.length === 0) continue;
      if (!values.force) {
        throw new ForkdError(
          'conflict',
          `snapshot ${tag} is the parent of ${outside.join(', ')}; remove them too (forkd rmi ${[tag, ...outside].join(' ')}), or pass --force to orphan them`,
        );
      }
      orphans.set(tag, outside);
    }
    for (const tag of removalOrder(tags, parentOf)) {
      await removeSnapshot(paths, tag);
      const orphaned = orphans.get(tag);
      ctx.out(`removed ${tag}${orphaned ? ` (orphaned: ${orphaned.join(', ')})` : ''}\n`);
    }
    return EXIT_OK;
  },
};

/** tag -> parentTag of every readable snapshot (a broken one has no known parent). */
function parentMap(list: readonly SnapshotListing[]): Map<string, string | null> {
  return new Map(list.map((s) => [s.tag, s.meta?.parentTag ?? null]));
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}
