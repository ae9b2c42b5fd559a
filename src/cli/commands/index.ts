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
];
