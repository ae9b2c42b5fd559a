// What core operations need from their caller: where the data lives, host facts, a logger.
import type { LocalConfig } from '../lib/config.js';
import type { Logger } from '../lib/log.js';
import { hostFacts, type HostFacts } from './host-facts.js';
import { DataPaths } from './paths.js';

export interface CoreContext {
  config: LocalConfig;
  paths: DataPaths;
  facts: HostFacts;
  logger: Logger;
}

export async function createCoreContext(config: LocalConfig, logger: Logger): Promise<CoreContext> {
  return { config, paths: new DataPaths(config.dataDir), facts: await hostFacts(config), logger };
}
