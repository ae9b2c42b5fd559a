// `forkd push --tag T URL`: pack a snapshot and upload it with one streamed HTTP PUT
// (presigned-URL style: Content-Length known, no other headers needed).
import { loadLocalConfig } from '../../lib/config.js';
import { ForkdError } from '../../lib/errors.js';
import { assertTag } from '../../lib/tag.js';
import { DataPaths } from '../../core/paths.js';
import { parseHttpUrl } from '../../pack/http.js';
import { removeTrackedTempPaths } from '../../pack/temp-paths.js';
import { pushSnapshot } from '../../pack/transfer.js';
import { formatMiB } from '../args.js';
import { byteProgress } from '../byte-progress.js';
import { withSignalCleanup } from '../local.js';
import { createProgress } from '../progress.js';
import { EXIT_OK, type Command } from '../command.js';
import { DATA_DIR_FLAG, JSON_FLAG, parseFlags } from '../flags.js';

const FLAGS = {
  tag: { type: 'string', value: 'TAG', help: 'snapshot to upload (required)' },
  'with-ancestors': { type: 'boolean', help: 'also pack the snapshots it descends from (parentTag chain)' },
  'data-dir': DATA_DIR_FLAG,
  json: JSON_FLAG,
} as const;

export const pushCommand: Command = {
  name: 'push',
  group: 'packs',
  modes: 'host',
  summary: 'Pack a snapshot and upload it to a URL with an HTTP PUT (e.g. a presigned object-store URL)',
  usage: ['push --tag TAG URL [--with-ancestors] [flags]'],
  flags: FLAGS,
  examples: ["forkd push --tag py 'https://bucket.example.com/py.forkd.tar.zst?X-Amz-Signature=...'"],
  notes: ["A URL's query string (a presigned signature) is never printed."],
  async run(argv, ctx) {
    const { values, positionals } = parseFlags(argv, FLAGS, { positionals: true });
    if (values.tag === undefined) throw new ForkdError('invalid_argument', '--tag is required');
    if (positionals.length !== 1) throw new ForkdError('invalid_argument', 'give exactly one URL');
    const tag = assertTag(values.tag, 'snapshot tag');
    const url = parseHttpUrl(positionals[0]!);
    const paths = new DataPaths(loadLocalConfig({ dataDir: values['data-dir'] }).dataDir);
    const progress = createProgress(ctx, !values.json || ctx.interactive);
    const started = Date.now();
    const r = await withSignalCleanup(removeTrackedTempPaths, () =>
      pushSnapshot(paths, {
        tag,
        url,
        withAncestors: values['with-ancestors'],
        onPack: byteProgress(progress, `packing ${tag}`, ctx.interactive),
        onUpload: byteProgress(progress, 'uploading', ctx.interactive),
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    progress.done(`pushed ${tag} to ${r.url}`);
    if (values.json)
      ctx.out(
        `${JSON.stringify({ tag, url: r.url, totalBytes: r.totalBytes, compressedBytes: r.compressedBytes, seconds }, null, 2)}\n`,
      );
    else ctx.out(`${tag} -> ${r.url}: ${formatMiB(r.compressedBytes)} uploaded (${seconds.toFixed(1)} s)\n`);
    return EXIT_OK;
  },
};
