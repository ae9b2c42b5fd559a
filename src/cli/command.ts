// The shape every `forkd` command has. A command declares its flags once (flags.ts): the same
// table feeds node:util parseArgs (strict: unknown flags are errors) and its `--help`.
import type { Logger } from '../lib/log.js';
import type { FlagTable } from './flags.js';

/** Local: this host's data dir. Daemon: a forkd-controller, through the SDK (the forkd package, packages/sdk). */
export type Mode = 'local' | 'daemon';

export interface CliContext {
  /** Standard output for results (tables, JSON). */
  out: (text: string) => void;
  /** Standard error for progress and diagnostics. */
  err: (text: string) => void;
  /** True when stderr is a terminal (progress can redraw a line). */
  interactive: boolean;
  logger: Logger;
  /** The command as the user typed it ("sandbox ls", or an old name such as "ls"), for messages. */
  name: string;
  /** Set by an old command name that always had one mode (`forkd images` is local); else the rule of mode.ts decides. */
  pinnedMode?: Mode | undefined;
}

/** How `forkd --help` groups commands. */
export type CommandGroup = 'host' | 'snapshots' | 'sandboxes' | 'packs' | 'tools';

/**
 * Which modes a command has. `host`: it works on this machine whatever --url says (setup,
 * packs). `both`: the mode rule picks. `daemon`: only a daemon can do it (sandboxes outlive a
 * command only there).
 */
export type CommandModes = 'host' | 'both' | 'daemon';

export interface Command {
  /** What follows `forkd`: one word, or a noun and a verb ("snapshot create"). */
  name: string;
  group: CommandGroup;
  modes: CommandModes;
  summary: string;
  /** Synopsis lines without the leading "forkd " ("snapshot rm TAG... [flags]"). */
  usage: string[];
  flags: FlagTable;
  /** Whole command lines, each starting with "forkd ". */
  examples: string[];
  /** Paragraphs printed after the summary (what the output is, what exit codes mean). */
  notes?: string[];
  run(argv: string[], ctx: CliContext): Promise<number>;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
