// The registry of `forkd` subcommands, in the order `forkd --help` lists them.
import type { Command } from '../command.js';
import { doctorCommand } from './doctor.js';
import { setupCommand } from './setup.js';
import { imageCommand } from './image.js';
import { snapshotCommand } from './snapshot.js';
import { forkCommand } from './fork.js';
import { imagesCommand, rmiCommand } from './images.js';
import { quickstartCommand } from './quickstart.js';
import { netnsCommand } from './netns.js';
import { packCommand } from './pack.js';
import { unpackCommand } from './unpack.js';
import { pushCommand } from './push.js';
import { pullCommand } from './pull.js';
import { spawnCommand } from './spawn.js';
import { lsCommand } from './ls.js';
import { killCommand } from './kill.js';
import { execCommand } from './exec.js';
import { evalCommand } from './eval.js';
import { cpCommand } from './cp.js';
import { branchCommand } from './branch.js';
import { mcpCommand } from './mcp.js';

export const commands: Command[] = [
  quickstartCommand,
  setupCommand,
  doctorCommand,
  imageCommand,
  snapshotCommand,
  forkCommand,
  imagesCommand,
  rmiCommand,
  netnsCommand,
  packCommand,
  unpackCommand,
  pushCommand,
  pullCommand,
  // Daemon mode (through the SDK, against forkd-controller):
  spawnCommand,
  lsCommand,
  killCommand,
  execCommand,
  evalCommand,
  cpCommand,
  branchCommand,
  mcpCommand,
];
