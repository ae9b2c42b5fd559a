// The registry of `forkd` commands, in the order `forkd --help` lists them within each group,
// and the old names that still work as aliases.
import type { Command } from '../command.js';
import type { Alias } from '../help.js';
import { quickstartCommand } from './quickstart.js';
import { setupCommand } from './setup.js';
import { doctorCommand } from './doctor.js';
import { imageBuildCommand } from './image.js';
import { netnsCleanupCommand } from './netns.js';
import { snapshotCreateCommand } from './snapshot/create.js';
import { snapshotLsCommand } from './snapshot/ls.js';
import { snapshotInspectCommand } from './snapshot/inspect.js';
import { snapshotRmCommand } from './snapshot/rm.js';
import { sandboxRunCommand } from './sandbox/run.js';
import { sandboxSpawnCommand } from './sandbox/spawn.js';
import { sandboxLsCommand } from './sandbox/ls.js';
import { sandboxExecCommand } from './sandbox/exec.js';
import { sandboxEvalCommand } from './sandbox/eval.js';
import { sandboxCpCommand } from './sandbox/cp.js';
import { sandboxBranchCommand } from './sandbox/branch.js';
import { sandboxKillCommand } from './sandbox/kill.js';
import { packCommand } from './pack.js';
import { unpackCommand } from './unpack.js';
import { pushCommand } from './push.js';
import { pullCommand } from './pull.js';
import { mcpCommand } from './mcp.js';

export const commands: readonly Command[] = [
  quickstartCommand,
  setupCommand,
  doctorCommand,
  imageBuildCommand,
  netnsCleanupCommand,
  snapshotCreateCommand,
  snapshotLsCommand,
  snapshotInspectCommand,
  snapshotRmCommand,
  sandboxRunCommand,
  sandboxSpawnCommand,
  sandboxLsCommand,
  sandboxExecCommand,
  sandboxEvalCommand,
  sandboxCpCommand,
  sandboxBranchCommand,
  sandboxKillCommand,
  packCommand,
  unpackCommand,
  pushCommand,
  pullCommand,
  mcpCommand,
];

/** `forkd snapshot --tag T ...`: the old local builder, recognised by a flag right after `snapshot`. */
export const SNAPSHOT_FLAGS_FORM: Alias = {
  name: 'snapshot --tag',
  target: 'snapshot create',
  use: 'snapshot create --tag',
  pinnedMode: 'local',
};

/**
 * Old names. Those whose new command has both modes keep the mode they always had (`images`,
 * `rmi`, `fork` and the flags form of `snapshot` were local; `snapshot info` talked to a daemon).
 */
export const aliases: readonly Alias[] = [
  { name: 'images', target: 'snapshot ls', pinnedMode: 'local' },
  { name: 'rmi', target: 'snapshot rm', pinnedMode: 'local' },
  SNAPSHOT_FLAGS_FORM,
  { name: 'snapshot info', target: 'snapshot inspect', pinnedMode: 'daemon' },
  { name: 'fork', target: 'sandbox run', pinnedMode: 'local' },
  { name: 'spawn', target: 'sandbox spawn' },
  { name: 'ls', target: 'sandbox ls' },
  { name: 'exec', target: 'sandbox exec' },
  { name: 'eval', target: 'sandbox eval' },
  { name: 'cp', target: 'sandbox cp' },
  { name: 'branch', target: 'sandbox branch' },
  { name: 'kill', target: 'sandbox kill' },
];

export function commandNamed(name: string): Command {
  const c = commands.find((x) => x.name === name);
  if (!c) throw new Error(`no command ${name}`);
  return c;
}
