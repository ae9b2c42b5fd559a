// `forkd images`: list snapshots with their sizes, image, age and users. `forkd rmi TAG`.
import { parseArgs } from 'node:util';
import { loadLocalConfig } from '../../lib/config.js';
import { ForkdError } from '../../lib/errors.js';
import { assertTag } from '../../lib/tag.js';
import { DataPaths } from '../../core/paths.js';
import { listSnapshots, removeSnapshot } from '../../core/snapshot-store.js';
import { formatAge, formatMiB } from '../args.js';
import { EXIT_OK, type Command } from '../command.js';

export const imagesCommand: Command = {
  name: 'images',
  summary: 'List snapshots: size (logical and on disk), guest RAM, image, age, running users',
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
    const header = ['TAG', 'IMAGE', 'RAM', 'LOGICAL', 'ON DISK', 'CREATED', 'IN USE'];
    const rows = list.map((s) => [
      s.tag,
      s.meta?.image.name ?? `broken: ${s.error ?? ''}`.slice(0, 40),
      s.meta ? `${s.meta.layout.memMiB} MiB` : '-',
      formatMiB(s.logicalBytes),
      formatMiB(s.diskBytes),
      formatAge(s.meta ? new Date(s.meta.createdAt) : s.modifiedAt),
      s.inUseBy.length ? String(s.inUseBy.length) : '-',
    ]);
    ctx.out(table([header, ...rows]));
    return EXIT_OK;
  },
};

export const rmiCommand: Command = {
  name: 'rmi',
  summary: 'Remove snapshots (refused while a running sandbox uses one)',
  usage: 'rmi TAG... [--data-dir DIR]',
  async run(argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: { 'data-dir': { type: 'string' } },
    });
    if (positionals.length === 0) throw new ForkdError('invalid_argument', 'give at least one snapshot tag');
    const tags = positionals.map((t) => assertTag(t, 'snapshot tag'));
    const paths = new DataPaths(loadLocalConfig({ dataDir: values['data-dir'] }).dataDir);
    for (const tag of tags) {
      await removeSnapshot(paths, tag);
      ctx.out(`removed ${tag}\n`);
    }
    return EXIT_OK;
  },
};

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
