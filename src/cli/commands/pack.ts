// `forkd pack --tag T`: write a snapshot (and with --with-ancestors its parentTag chain) as one
// portable, verified .forkd.tar.zst. Progress on stderr; the result on stdout.
import { parseArgs } from 'node:util';
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

export const packCommand: Command = {
  name: 'pack',
  summary: 'Write a snapshot as one portable .forkd.tar.zst (manifest with sha256 of every file)',
  usage: 'pack --tag TAG [-o FILE] [--with-ancestors] [--force] [--data-dir DIR] [--json]',
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        tag: { type: 'string' },
        output: { type: 'string', short: 'o' },
        'with-ancestors': { type: 'boolean', default: false },
        force: { type: 'boolean', default: false },
        'data-dir': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
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
