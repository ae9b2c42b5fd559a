// What core operations need from their caller: where the data lives, host facts, a logger.
import type { LocalConfig } from '../lib/config.js';
import type { Logger } from '../lib/log.js';
import { assertVmUserReaches } from '../host/data-dir-access.js';
import { hostFacts, type HostFacts } from './host-facts.js';
import { DataPaths } from './paths.js';

export interface CoreContext {
  config: LocalConfig;
  paths: DataPaths;
  facts: HostFacts;
  logger: Logger;
}

/** Refuses up front (host_error, one line) a data dir the VM user cannot traverse. */
export async function createCoreContext(config: LocalConfig, logger: Logger): Promise<CoreContext> {
  const facts = await hostFacts(config);
  if (facts.vmUser) await assertVmUserReaches(config.dataDir, facts.vmUser);
  return { config, paths: new DataPaths(config.dataDir), facts, logger };
}
