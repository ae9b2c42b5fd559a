// `forkd snapshot --tag T`: boot a parent from an image, warm it, save it as a snapshot.
import { parseArgs } from 'node:util';
import { assertTag } from '../../lib/tag.js';
import { ForkdError } from '../../lib/errors.js';
import { createSnapshot, MEM_MIB_RANGE, VCPU_RANGE } from '../../core/snapshot-create.js';
import { intFlag, listFlag } from '../args.js';
import { openLocal } from '../local.js';
import { createProgress } from '../progress.js';
import { EXIT_OK, type Command } from '../command.js';
import { REMOTE_SNAPSHOT_SUBCOMMANDS, REMOTE_SNAPSHOT_USAGE, runRemoteSnapshot } from './snapshot-remote.js';

export const snapshotCommand: Command = {
  name: 'snapshot',
  summary: 'Boot a parent VM from an image, run warm-up commands, save it as a tagged snapshot',
  usage:
    'snapshot --tag TAG [--image default] [--mem-mib 512] [--vcpus 1] [--warmup CMD]... [--python-preload MOD,...] [--boot-timeout-secs 120] [--data-dir DIR] [--json]\n' +
    `       forkd ${REMOTE_SNAPSHOT_USAGE}`,
  async run(argv, ctx) {
    // Daemon mode: `forkd snapshot create|ls|info|rm ...`; flags alone keep the local builder.
    const sub = argv[0];
    if ((REMOTE_SNAPSHOT_SUBCOMMANDS as readonly string[]).includes(sub ?? ''))
      return runRemoteSnapshot(sub!, argv.slice(1), ctx);
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        tag: { type: 'string' },
        image: { type: 'string', default: 'default' },
        'mem-mib': { type: 'string' },
        vcpus: { type: 'string' },
        warmup: { type: 'string', multiple: true },
        'python-preload': { type: 'string', multiple: true },
        'boot-timeout-secs': { type: 'string' },
        'data-dir': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    if (values.tag === undefined) throw new ForkdError('invalid_argument', '--tag is required');
    const tag = assertTag(values.tag, 'snapshot tag');
    const image = assertTag(values.image, 'image name');
    const memMiB = intFlag('mem-mib', values['mem-mib'], 512, MEM_MIB_RANGE);
    const vcpus = intFlag('vcpus', values.vcpus, 1, VCPU_RANGE);
    const bootTimeoutSecs = intFlag('boot-timeout-secs', values['boot-timeout-secs'], 120, { min: 1, max: 3600 });
    const preload = values['python-preload'] === undefined ? undefined : listFlag(values['python-preload']);
    const core = await openLocal(ctx, values['data-dir']);
    const progress = createProgress(ctx);
    const started = Date.now();
    const meta = await createSnapshot(core, {
      tag,
      image,
      memMiB,
      vcpus,
      warmup: values.warmup ?? [],
      bootTimeoutMs: bootTimeoutSecs * 1000,
      onProgress: (m) => progress.step(m),
      ...(preload ? { pythonPreload: preload } : {}),
    });
    progress.done(`snapshot ${tag} saved`);
    if (values.json) ctx.out(`${JSON.stringify({ ...meta, totalMs: Date.now() - started }, null, 2)}\n`);
    else
      ctx.out(
        `snapshot ${tag}: image=${meta.image.name} mem=${meta.layout.memMiB} MiB vcpus=${meta.layout.vcpus} accel=${meta.accel} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
      );
    return EXIT_OK;
  },
};
