// `forkd snapshot create --tag T`: boot a parent from an image, warm it, save it as a snapshot.
// Local mode builds it here; daemon mode asks the daemon to (202) and, unless --no-wait, polls
// it to ready.
import { ForkdError } from '../../../lib/errors.js';
import { assertTag } from '../../../lib/tag.js';
import { createSnapshot } from '../../../core/snapshot-create.js';
import { BOOT_WAIT_SECS, MEM_MIB_RANGE, VCPU_RANGE } from '../../../lib/contract.js';
import { intFlag, listFlag } from '../../args.js';
import { EXIT_OK, type CliContext, type Command } from '../../command.js';
import { openController, parseModeFlags } from '../../daemon.js';
import { clientFlags, JSON_FLAG, LOCAL_DATA_DIR_FLAG, type FlagValues } from '../../flags.js';
import { openLocal } from '../../local.js';
import { createProgress } from '../../progress.js';

const LOCAL_BOOT_TIMEOUT_SECS = 120;
/** The daemon's bound (and default) for boot_wait_secs. */
const DAEMON_BOOT_TIMEOUT_SECS = BOOT_WAIT_SECS;

const FLAGS = {
  tag: { type: 'string', value: 'TAG', help: 'name of the new snapshot: letters, digits, - and _ (required)' },
  image: { type: 'string', value: 'NAME', default: 'default', help: 'image to boot (forkd image build)' },
  'mem-mib': {
    type: 'string',
    value: 'MIB',
    default: String(MEM_MIB_RANGE.default),
    help: `guest RAM, ${MEM_MIB_RANGE.min} to ${MEM_MIB_RANGE.max}`,
  },
  vcpus: {
    type: 'string',
    value: 'N',
    default: String(VCPU_RANGE.default),
    help: `virtual CPUs, ${VCPU_RANGE.min} to ${VCPU_RANGE.max}`,
  },
  warmup: { type: 'string', value: 'CMD', multiple: true, help: 'shell command run in the parent before saving' },
  'boot-timeout-secs': {
    type: 'string',
    value: 'SECS',
    default: `${LOCAL_BOOT_TIMEOUT_SECS}; in a daemon ${DAEMON_BOOT_TIMEOUT_SECS.max}, its maximum`,
    help: "how long the parent's agent may take to answer after boot",
  },
  json: JSON_FLAG,
  'python-preload': {
    type: 'string',
    value: 'MOD,...',
    multiple: true,
    mode: 'local',
    help: "modules the image's warm Python worker imports (default: the image's list)",
  },
  'data-dir': LOCAL_DATA_DIR_FLAG,
  'boot-wait-secs': { type: 'string', value: 'SECS', mode: 'daemon', help: 'older name of --boot-timeout-secs' },
  'no-wait': { type: 'boolean', mode: 'daemon', help: 'return once the daemon started the build (status writing)' },
  ...clientFlags(),
} as const;

type Values = FlagValues<typeof FLAGS>;

export const snapshotCreateCommand: Command = {
  name: 'snapshot create',
  group: 'snapshots',
  modes: 'both',
  summary: 'Boot a parent VM from an image, run warm-up commands, save it as a tagged snapshot',
  usage: ['snapshot create --tag TAG [--image NAME] [--warmup CMD]... [flags]'],
  flags: FLAGS,
  examples: [
    `forkd snapshot create --tag py --image numpy --warmup 'python3 -c "import numpy"'`,
    'forkd snapshot create --tag base --url http://127.0.0.1:8889 --no-wait',
  ],
  notes: ['Prints one line (local: image, RAM, vCPUs, accelerator, seconds; daemon: tag and status), or --json.'],
  async run(argv, ctx) {
    const { values, mode } = parseModeFlags(ctx, argv, FLAGS);
    if (values.tag === undefined) throw new ForkdError('invalid_argument', '--tag is required');
    return mode === 'local' ? createHere(values, values.tag, ctx) : createInDaemon(values, values.tag, ctx);
  },
};

async function createHere(values: Values, rawTag: string, ctx: CliContext): Promise<number> {
  const tag = assertTag(rawTag, 'snapshot tag');
  const image = assertTag(values.image ?? 'default', 'image name');
  const memMiB = intFlag('mem-mib', values['mem-mib'], MEM_MIB_RANGE.default, MEM_MIB_RANGE);
  const vcpus = intFlag('vcpus', values.vcpus, VCPU_RANGE.default, VCPU_RANGE);
  const bootTimeoutSecs = intFlag('boot-timeout-secs', values['boot-timeout-secs'], LOCAL_BOOT_TIMEOUT_SECS, {
    min: 1,
    max: 3600,
  });
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
}

async function createInDaemon(values: Values, tag: string, ctx: CliContext): Promise<number> {
  const bootRaw = values['boot-timeout-secs'] ?? values['boot-wait-secs'];
  const c = await openController(values);
  const progress = createProgress(ctx, !values.json || ctx.interactive);
  progress.step(`building snapshot ${tag} in the daemon`);
  let s = await c.snapshots.create({
    tag,
    ...(values.image !== undefined ? { image: values.image } : {}),
    ...(values['mem-mib'] !== undefined
      ? { mem_mib: intFlag('mem-mib', values['mem-mib'], MEM_MIB_RANGE.default, MEM_MIB_RANGE) }
      : {}),
    ...(values.vcpus !== undefined ? { vcpus: intFlag('vcpus', values.vcpus, VCPU_RANGE.default, VCPU_RANGE) } : {}),
    ...(values.warmup !== undefined ? { warmup: values.warmup } : {}),
    ...(bootRaw !== undefined
      ? {
          boot_wait_secs: intFlag('boot-timeout-secs', bootRaw, DAEMON_BOOT_TIMEOUT_SECS.max, DAEMON_BOOT_TIMEOUT_SECS),
        }
      : {}),
  });
  if (!values['no-wait']) {
    s = await c.snapshots.wait(tag, { onProgress: (x) => progress.step(`snapshot ${tag}: ${x.status}`) });
    progress.done(`snapshot ${tag} ready`);
  }
  ctx.out(values.json ? `${JSON.stringify(s, null, 2)}\n` : `${s.tag} ${s.status}\n`);
  return EXIT_OK;
}
