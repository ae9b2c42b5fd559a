// `forkd` entry: finds the command the words name (a noun and a verb, one word, or an old
// name), prints help, runs it, and turns errors into a one-line message and an exit code (2 for
// bad input, 1 for everything else). Stack traces only with FORKD_LOG_LEVEL=debug.
import { ForkdError, messageOf } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { loadLocalConfig } from '../lib/config.js';
import { FORKD_VERSION } from '../lib/version.js';
import { ForkdApiError } from 'forkd';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliContext, type Command } from './command.js';
import { aliases, commandNamed, commands, SNAPSHOT_FLAGS_FORM } from './commands/index.js';
import { describeApiError } from './daemon.js';
import { commandHelp, nounHelp, rootHelp, type Alias } from './help.js';

const USAGE_CODES = new Set(['invalid_argument', 'invalid_tag', 'invalid_id']);
const HELP = new Set(['--help', '-h']);

/** Where `main` writes; tests pass their own. */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  interactive: boolean;
}

const processIo = (): CliIo => ({
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  interactive: process.stderr.isTTY === true,
});

type Found =
  | { kind: 'command'; command: Command; alias?: Alias; typed: string; argv: string[] }
  | { kind: 'noun'; noun: string; argv: string[] }
  | { kind: 'unknown'; typed: string };

const NOUNS = new Set(commands.filter((c) => c.name.includes(' ')).map((c) => c.name.split(' ')[0]!));

/** The longest name the first words match: "snapshot create" before "snapshot"; old names too. */
export function findCommand(argv: readonly string[]): Found {
  const [first = '', second] = argv;
  const named = (name: string, words: number): Found | undefined => {
    const command = commands.find((c) => c.name === name);
    if (command) return { kind: 'command', command, typed: name, argv: argv.slice(words) };
    // The flags form is found by its shape below, never as the words "snapshot --tag".
    const alias = aliases.find((a) => a.name === name && a !== SNAPSHOT_FLAGS_FORM);
    if (alias)
      return { kind: 'command', command: commandNamed(alias.target), alias, typed: name, argv: argv.slice(words) };
    return undefined;
  };
  const two = second === undefined ? undefined : named(`${first} ${second}`, 2);
  if (two) return two;
  if (first === 'snapshot' && second !== undefined && second.startsWith('-') && !HELP.has(second))
    return {
      kind: 'command',
      command: commandNamed(SNAPSHOT_FLAGS_FORM.target),
      alias: SNAPSHOT_FLAGS_FORM,
      typed: 'snapshot',
      argv: argv.slice(1),
    };
  if (NOUNS.has(first)) return { kind: 'noun', noun: first, argv: argv.slice(1) };
  return named(first, 1) ?? { kind: 'unknown', typed: first };
}

export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const config = loadLocalConfig();
  const logger = createLogger({ level: config.logLevel });
  const [first, ...rest] = argv;
  if (first === undefined || HELP.has(first) || first === 'help') {
    if (first === 'help' && rest.length > 0) return main([...rest, '--help'], io);
    io.out(rootHelp(commands, aliases));
    return first === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (first === '--version') {
    io.out(`${FORKD_VERSION}\n`);
    return EXIT_OK;
  }
  const found = findCommand(argv);
  if (found.kind === 'unknown') {
    io.err(`forkd: unknown command "${found.typed}"\n\n${rootHelp(commands, aliases)}`);
    return EXIT_USAGE;
  }
  if (found.kind === 'noun') {
    const [verb] = found.argv;
    if (verb !== undefined && HELP.has(verb)) {
      io.out(nounHelp(found.noun, commands));
      return EXIT_OK;
    }
    io.err(
      `${verb === undefined ? '' : `forkd ${found.noun}: unknown verb "${verb}"\n\n`}${nounHelp(found.noun, commands)}`,
    );
    return EXIT_USAGE;
  }
  const { command, alias } = found;
  const ctx: CliContext = { ...io, logger, name: found.typed, pinnedMode: alias?.pinnedMode };
  const code = await runCommand(command, found.argv, ctx, config.logLevel === 'debug');
  // After the run, and only when it succeeded: a failure's stderr stays its one error line.
  if (alias && code === EXIT_OK) io.err(`forkd ${alias.name} is deprecated; use forkd ${alias.use ?? alias.target}\n`);
  return code;
}

async function runCommand(command: Command, argv: string[], ctx: CliContext, withStack: boolean): Promise<number> {
  // After `--` the words belong to the guest command (`forkd sandbox exec ID -- python3 --help`).
  const own = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  if (own.some((a) => HELP.has(a))) {
    ctx.out(commandHelp(command));
    return EXIT_OK;
  }
  try {
    return await command.run(argv, ctx);
  } catch (error) {
    return reportError(ctx, error, withStack);
  }
}

export function reportError(ctx: CliContext, error: unknown, withStack: boolean): number {
  const prefix = `forkd ${ctx.name}:`;
  if (error instanceof ForkdError || error instanceof ForkdApiError) {
    ctx.err(`${prefix} ${error instanceof ForkdApiError ? describeApiError(error) : error.message}\n`);
    if (withStack && error.stack) ctx.err(`${error.stack}\n`);
    return USAGE_CODES.has(error.code) ? EXIT_USAGE : EXIT_FAILURE;
  }
  // node:util parseArgs throws TypeErrors with code ERR_PARSE_ARGS_* for bad flags.
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    ctx.err(`${prefix} ${messageOf(error)}\n`);
    return EXIT_USAGE;
  }
  ctx.err(`${prefix} unexpected error: ${messageOf(error)}\n`);
  if (error instanceof Error && error.stack) ctx.err(`${error.stack}\n`);
  return EXIT_FAILURE;
}
