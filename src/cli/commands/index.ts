// The registry of `forkd` subcommands, in the order `forkd --help` lists them.
import type { Command } from '../command.js';
import { doctorCommand } from './doctor.js';
import { setupCommand } from './setup.js';

export const commands: Command[] = [setupCommand, doctorCommand];
