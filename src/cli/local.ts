// Local mode: the CLI drives core directly on this host (no daemon). Opens the core context
// and makes sure sandboxes started by a command are torn down on Ctrl-C or SIGTERM.
import { loadLocalConfig } from '../lib/config.js';
import type { CoreContext } from '../core/context.js';
import { createCoreContext } from '../core/context.js';
import type { CliContext } from './command.js';

export async function openLocal(ctx: CliContext, dataDir: string | undefined): Promise<CoreContext> {
  const config = loadLocalConfig({ dataDir });
  const core = await createCoreContext(config, ctx.logger);
  if (core.facts.accel.warning) ctx.err(`note: ${core.facts.accel.accel.toUpperCase()}: ${core.facts.accel.warning}\n`);
  return core;
}

/**
 * Run `body` with a cleanup that also runs on SIGINT/SIGTERM, so an interrupted fork leaves
 * no QEMU process or run dir behind. A second signal exits at once.
 */
export async function withSignalCleanup<T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> {
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\n${sig}: tearing down sandboxes...\n`);
    void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await body();
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
