// The registry of `forkd` subcommands, in the order `forkd --help` lists them.
import type { Command } from '../command.js';

export const commands: Command[] = [];
