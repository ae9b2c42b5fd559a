// `forkd pull URL`: download a pack (HTTP(S) GET, streamed to a temp file in the data dir),
// check --sha256 when given, then unpack it exactly as `forkd unpack` does.
import { ForkdError } from '../../lib/errors.js';
import { parseHttpUrl } from '../../pack/http.js';
import { removeTrackedTempPaths } from '../../pack/temp-paths.js';
import { parseSha256, pullSnapshot } from '../../pack/transfer.js';
import { byteProgress } from '../byte-progress.js';
import { openLocal, withSignalCleanup } from '../local.js';
import { createProgress } from '../progress.js';
import { EXIT_OK, type Command } from '../command.js';
import { parseFlags } from '../flags.js';
import { maxBytesFlag, optionalTag, reportUnpacked, UNPACK_FLAGS } from './unpack.js';

const FLAGS = {
  sha256: { type: 'string', value: 'HEX', help: 'the sha256 the download must have (checked before unpacking)' },
  ...UNPACK_FLAGS,
} as const;

export const pullCommand: Command = {
  name: 'pull',
  group: 'packs',
  modes: 'host',
  summary: 'Download a .forkd.tar.zst from a URL (sha256 checked when given) and unpack it',
  usage: ['pull URL [--sha256 HEX] [--tag TAG] [flags]'],
  flags: FLAGS,
  examples: ['forkd pull https://example.com/packs/py.forkd.tar.zst --sha256 9f86d08...'],
  notes: ["A URL's query string (a presigned signature) is never printed."],
  async run(argv, ctx) {
    const { values, positionals } = parseFlags(argv, FLAGS, { positionals: true });
    if (positionals.length !== 1) throw new ForkdError('invalid_argument', 'give exactly one URL');
    const url = parseHttpUrl(positionals[0]!);
    const tag = optionalTag(values.tag);
    const sha256 = values.sha256 === undefined ? undefined : parseSha256(values.sha256);
    const maxBytes = maxBytesFlag(values['max-size-gib']);
    const core = await openLocal(ctx, values['data-dir']);
    const progress = createProgress(ctx, !values.json || ctx.interactive);
    const started = Date.now();
    const r = await withSignalCleanup(removeTrackedTempPaths, () =>
      pullSnapshot(core, {
        url,
        tag,
        sha256,
        force: values.force,
        allowIncompatible: values['allow-incompatible'],
        maxBytes,
        onDownload: byteProgress(progress, 'downloading', ctx.interactive),
        onUnpack: byteProgress(progress, 'unpacking', ctx.interactive),
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    progress.done(`pulled ${r.manifest.tag}`);
    reportUnpacked(ctx, r, values.json, { sha256: r.sha256, downloadedBytes: r.downloadedBytes, seconds });
    return EXIT_OK;
  },
};
