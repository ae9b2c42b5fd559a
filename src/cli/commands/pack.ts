// `forkd pack --tag T`: write a snapshot (and with --with-ancestors its parentTag chain) as one
// portable, verified .forkd.tar.zst. Progress on stderr; the result on stdout.
import { loadLocalConfig } from '../../lib/config.js';
import { ForkdError } from '../../lib/errors.js';
import { assertTag } from '../../lib/tag.js';
import { DataPaths } from '../../core/paths.js';
import { PACK_EXTENSION } from '../../pack/manifest.js';
import { packToFile } from '../../pack/pack.js';
import { removeTrackedTempPaths } from '../../pack/temp-paths.js';
import { formatMiB } from '../args.js';
import { byteProgress } from '../byte-progress.js';
import { withSignalCleanup } from '../local.js';
import { createProgress } from '../progress.js';
import { EXIT_OK, type Command } from '../command.js';
import { DATA_DIR_FLAG, JSON_FLAG, parseFlags } from '../flags.js';

const FLAGS = {
  tag: { type: 'string', value: 'TAG', help: 'snapshot to pack (required)' },
  output: {
    type: 'string',
    short: 'o',
    value: 'FILE',
    default: `TAG${PACK_EXTENSION}`,
    help: 'where to write the pack',
  },
  'with-ancestors': { type: 'boolean', help: 'also pack the snapshots it descends from (parentTag chain)' },
  force: { type: 'boolean', help: 'overwrite FILE' },
  'data-dir': DATA_DIR_FLAG,
  json: JSON_FLAG,
} as const;

export const packCommand: Command = {
  name: 'pack',
  group: 'packs',
  modes: 'host',
  summary: 'Write a snapshot as one portable .forkd.tar.zst (manifest with sha256 of every file)',
  usage: ['pack --tag TAG [-o FILE] [--with-ancestors] [flags]'],
  flags: FLAGS,
  examples: ['forkd pack --tag py', 'forkd pack --tag leaf --with-ancestors -o leaf.forkd.tar.zst'],
  async run(argv, ctx) {
    const { values } = parseFlags(argv, FLAGS);
    if (values.tag === undefined) throw new ForkdError('invalid_argument', '--tag is required');
    const tag = assertTag(values.tag, 'snapshot tag');
    const paths = new DataPaths(loadLocalConfig({ dataDir: values['data-dir'] }).dataDir);
    const progress = createProgress(ctx, !values.json || ctx.interactive);
    const started = Date.now();
    const r = await withSignalCleanup(removeTrackedTempPaths, () =>
      packToFile(paths, {
        tag,
        output: values.output ?? `${tag}${PACK_EXTENSION}`,
        withAncestors: values['with-ancestors'],
        force: values.force,
        onProgress: byteProgress(progress, `packing ${tag}`, ctx.interactive),
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    progress.done(`packed ${tag} into ${r.path}`);
    const tags = r.manifest.snapshots.map((s) => s.tag);
    if (values.json) {
      ctx.out(
        `${JSON.stringify({ tag, path: r.path, snapshots: tags, totalBytes: r.totalBytes, compressedBytes: r.compressedBytes, seconds }, null, 2)}\n`,
      );
    } else {
      ctx.out(
        `${r.path}: ${tags.join(', ')}; ${formatMiB(r.totalBytes)} -> ${formatMiB(r.compressedBytes)} (${seconds.toFixed(1)} s)\n`,
      );
    }
    return EXIT_OK;
  },
};
