// `forkd unpack FILE`: verify a pack completely (hostile input) and store its snapshots.
import { ForkdError } from '../../lib/errors.js';
import { assertTag } from '../../lib/tag.js';
import { GIB } from '../../host/disk.js';
import { removeTrackedTempPaths } from '../../pack/temp-paths.js';
import { DEFAULT_MAX_UNPACK_BYTES, unpackFile, type UnpackResult } from '../../pack/unpack.js';
import { intFlag } from '../args.js';
import { byteProgress } from '../byte-progress.js';
import { openLocal, withSignalCleanup } from '../local.js';
import { createProgress } from '../progress.js';
import { EXIT_OK, type CliContext, type Command } from '../command.js';
import { DATA_DIR_FLAG, JSON_FLAG, parseFlags } from '../flags.js';

/** Flags unpack and pull share. */
export const UNPACK_FLAGS = {
  tag: { type: 'string', value: 'TAG', default: "the pack's", help: "store the pack's snapshot under this tag" },
  force: { type: 'boolean', help: 'replace snapshots here that differ from the pack' },
  'allow-incompatible': {
    type: 'boolean',
    help: 'store it even if this host cannot restore it (other QEMU or accelerator)',
  },
  'max-size-gib': {
    type: 'string',
    value: 'GIB',
    default: String(DEFAULT_MAX_UNPACK_BYTES / GIB),
    help: 'refuse a pack that declares more data than this',
  },
  'data-dir': DATA_DIR_FLAG,
  json: JSON_FLAG,
} as const;

export function maxBytesFlag(raw: string | undefined): number {
  return intFlag('max-size-gib', raw, DEFAULT_MAX_UNPACK_BYTES / GIB, { min: 1, max: 1024 * 1024 }) * GIB;
}

export function optionalTag(raw: string | undefined): string | undefined {
  return raw === undefined ? undefined : assertTag(raw, 'snapshot tag');
}

export function reportUnpacked(
  ctx: CliContext,
  r: UnpackResult,
  json: boolean,
  extra: Record<string, unknown> = {},
): void {
  if (json) {
    ctx.out(
      `${JSON.stringify({ tag: r.manifest.tag, snapshots: r.snapshots, totalBytes: r.totalBytes, ...extra }, null, 2)}\n`,
    );
    return;
  }
  for (const s of r.snapshots) {
    const as = s.storedAs === s.tag ? '' : ` as ${s.storedAs}`;
    const what =
      s.action === 'keep' ? 'already here (identical), kept' : s.action === 'replace' ? 'replaced' : 'stored';
    ctx.out(`${s.tag}${as}: ${what}\n`);
  }
}

export const unpackCommand: Command = {
  name: 'unpack',
  group: 'packs',
  modes: 'host',
  summary: 'Verify a .forkd.tar.zst (every tag, entry, size and sha256) and store its snapshots',
  usage: ['unpack FILE [--tag TAG] [--force] [flags]'],
  flags: UNPACK_FLAGS,
  examples: ['forkd unpack py.forkd.tar.zst', 'forkd unpack py.forkd.tar.zst --tag py-copy --json'],
  notes: ['The pack is hostile input: nothing is stored unless all of it checks out.'],
  async run(argv, ctx) {
    const { values, positionals } = parseFlags(argv, UNPACK_FLAGS, { positionals: true });
    if (positionals.length !== 1) throw new ForkdError('invalid_argument', 'give exactly one pack file');
    const tag = optionalTag(values.tag);
    const maxBytes = maxBytesFlag(values['max-size-gib']);
    const core = await openLocal(ctx, values['data-dir']);
    const progress = createProgress(ctx, !values.json || ctx.interactive);
    const started = Date.now();
    const r = await withSignalCleanup(removeTrackedTempPaths, () =>
      unpackFile(core, {
        file: positionals[0]!,
        tag,
        force: values.force,
        allowIncompatible: values['allow-incompatible'],
        maxBytes,
        onProgress: byteProgress(progress, 'unpacking', ctx.interactive),
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    progress.done(`unpacked ${r.manifest.tag}`);
    reportUnpacked(ctx, r, values.json, { seconds });
    return EXIT_OK;
  },
};
