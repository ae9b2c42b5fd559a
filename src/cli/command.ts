// The shape every `forkd` subcommand has. Commands parse their own flags with node:util
// parseArgs (strict: unknown flags are errors) and return an exit code.
import type { Logger } from '../lib/log.js';

export interface CliContext {
  /** Standard output for results (tables, JSON). */
  out: (text: string) => void;
  /** Standard error for progress and diagnostics. */
  err: (text: string) => void;
  /** True when stderr is a terminal (progress can redraw a line). */
  interactive: boolean;
  logger: Logger;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(argv: string[], ctx: CliContext): Promise<number>;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
