// `forkd setup`: make this host ready, idempotently. Every step first looks at what is there
// and only does the missing part, so re-running it is cheap and safe.
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadLocalConfig } from '../../lib/config.js';
import { errnoOf, ForkdError, isForkdError, messageOf } from '../../lib/errors.js';
import { detectAccel, type AccelDecision } from '../../host/accel.js';
import { aptInstallCommand, installPackages, missingPackages, REQUIRED_PACKAGES } from '../../host/apt.js';
import { ensureUser, isRoot } from '../../host/users.js';
import { ensureKernel } from '../../image/kernel.js';
import { buildImage } from '../../image/build.js';
import { buildNothp } from '../../host/nothp.js';
import { buildTscProbe } from '../../host/tsc.js';
import { createProgress } from '../progress.js';
import { EXIT_OK, type Command } from '../command.js';
import { DATA_DIR_FLAG, JSON_FLAG, parseFlags } from '../flags.js';

/** Data dir layout; run/ is 0711 so the VM user can reach its own run/<id> but not list others. */
export const DATA_DIR_LAYOUT: ReadonlyArray<{ name: string; mode: number }> = [
  { name: 'images', mode: 0o755 },
  { name: 'snapshots', mode: 0o755 },
  { name: 'run', mode: 0o711 },
  { name: 'cache', mode: 0o755 },
];

export async function ensureDataDir(dataDir: string): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o755 });
    for (const { name, mode } of DATA_DIR_LAYOUT) {
      const dir = join(dataDir, name);
      await mkdir(dir, { recursive: true, mode });
      await chmod(dir, mode); // mkdir's mode is filtered by the umask; chmod is not
    }
  } catch (error) {
    throw new ForkdError(
      'host_error',
      `cannot create data dir ${dataDir}: ${errnoOf(error) ?? messageOf(error)}; run as root or pass --data-dir to a writable place`,
      { cause: error },
    );
  }
}

/** Run one step; a plain Error from below becomes a host_error naming the step. */
async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (isForkdError(error)) throw error;
    throw new ForkdError('host_error', `setup step "${name}" failed: ${messageOf(error)}`, { cause: error });
  }
}

function accelSummary(accel: AccelDecision): string {
  return `accelerator: ${accel.accel} (${accel.warning ?? accel.reason})`;
}

const FLAGS = {
  'data-dir': DATA_DIR_FLAG,
  'skip-image': { type: 'boolean', help: 'do not build the default image' },
  json: JSON_FLAG,
} as const;

export const setupCommand: Command = {
  name: 'setup',
  group: 'host',
  modes: 'host',
  summary: 'Prepare this host: Debian packages, VM user, data dir, guest kernel, default image',
  usage: ['setup [--data-dir DIR] [--skip-image] [--json]'],
  flags: FLAGS,
  examples: ['sudo forkd setup', 'sudo forkd setup --data-dir /srv/forkd --skip-image'],
  notes: [
    'Idempotent: each step looks at what is there and only does the missing part. Installing packages needs root.',
  ],
  async run(argv, ctx) {
    const { values } = parseFlags(argv, FLAGS);
    const config = loadLocalConfig({ dataDir: values['data-dir'] });
    const progress = createProgress(ctx);
    const onProgress = (msg: string): void => progress.step(msg);

    const missing = await step('packages', () => missingPackages(REQUIRED_PACKAGES));
    if (missing.length > 0 && !isRoot()) {
      throw new ForkdError(
        'host_error',
        `missing Debian packages: ${missing.join(' ')}; installing them needs root: run "sudo forkd setup" or "${aptInstallCommand(missing)}"`,
      );
    }
    await step('packages', () => installPackages(missing, onProgress));
    progress.done(missing.length > 0 ? `installed ${missing.join(' ')}` : 'Debian packages present');

    const user = await step('vm-user', () => ensureUser(config.vmUser));
    progress.done(`VM user ${user.name} uid=${user.uid} gid=${user.gid}${user.created ? ' (created)' : ''}`);

    await step('data-dir', () => ensureDataDir(config.dataDir));
    progress.done(`data dir ${config.dataDir}`);

    // Root only: it goes to a host-wide libexec dir. Without it QEMU simply starts directly.
    const launcher = isRoot() ? await step('qemu-launcher', () => buildNothp()) : null;
    if (launcher) progress.done(`QEMU launcher ${launcher} (transparent huge pages off under TCG)`);
    const tscProbe = isRoot() ? await step('tsc-probe', () => buildTscProbe()) : null;
    if (tscProbe) progress.done(`TSC probe ${tscProbe} (tells TCG guests the host's TSC rate)`);

    const kernel = await step('kernel', () => ensureKernel({ dataDir: config.dataDir, onProgress }));
    progress.done(`kernel ${kernel.release}`);

    let image: { name: string; id: string } | undefined;
    if (!values['skip-image']) {
      image = await step('image', () =>
        buildImage({ dataDir: config.dataDir, name: 'default', packages: [], onProgress }),
      );
      progress.done(`image ${image.name} ${image.id}`);
    }

    const accel = await detectAccel(config.accelOverride);
    if (values.json) {
      const result = {
        installed: missing,
        user,
        dataDir: config.dataDir,
        launcher,
        kernel,
        image: image ?? null,
        accel,
      };
      ctx.out(`${JSON.stringify(result, null, 2)}\n`);
    } else {
      ctx.out(`forkd is set up in ${config.dataDir}\n${accelSummary(accel)}\n`);
    }
    return EXIT_OK;
  },
};
