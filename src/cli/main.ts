// `forkd` entry: dispatches to a subcommand and turns errors into a one-line message and an
// exit code (2 for bad input, 1 for everything else). Stack traces only with FORKD_LOG_LEVEL=debug.
import { ForkdError, messageOf } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { loadLocalConfig } from '../lib/config.js';
import { EXIT_FAILURE, EXIT_USAGE, type CliContext, type Command } from './command.js';
import { commands } from './commands/index.js';

const USAGE_CODES = new Set(['invalid_argument', 'invalid_tag', 'invalid_id']);

export function usage(list: readonly Command[]): string {
  const width = Math.max(...list.map((c) => c.name.length));
  const lines = list.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `forkd: microVM sandboxes that fork in milliseconds\n\nusage: forkd <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun "forkd <command> --help" for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const config = loadLocalConfig();
  const ctx: CliContext = {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    interactive: process.stderr.isTTY === true,
    logger: createLogger({ level: config.logLevel }),
  };
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    ctx.out(usage(commands));
    return name === undefined ? EXIT_USAGE : 0;
  }
  if (name === '--version') {
    ctx.out(`${(await import('../lib/version.js')).FORKD_VERSION}\n`);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    ctx.err(`forkd: unknown command "${name}"\n\n${usage(commands)}`);
    return EXIT_USAGE;
  }
  // After `--` the words belong to the guest command (`forkd exec ID -- python3 --help`).
  const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (own.includes('--help') || own.includes('-h')) {
    ctx.out(`usage: forkd ${command.usage}\n\n${command.summary}\n`);
    return 0;
  }
  try {
    return await command.run(rest, ctx);
  } catch (error) {
    return reportError(ctx, command.name, error, config.logLevel === 'debug');
  }
}

export function reportError(ctx: CliContext, commandName: string, error: unknown, withStack: boolean): number {
  if (error instanceof ForkdError) {
    ctx.err(`forkd ${commandName}: ${error.message}\n`);
    if (withStack && error.stack) ctx.err(`${error.stack}\n`);
    return USAGE_CODES.has(error.code) ? EXIT_USAGE : EXIT_FAILURE;
  }
  // node:util parseArgs throws TypeErrors with code ERR_PARSE_ARGS_* for bad flags.
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    ctx.err(`forkd ${commandName}: ${messageOf(error)}\n`);
    return EXIT_USAGE;
  }
  ctx.err(`forkd ${commandName}: unexpected error: ${messageOf(error)}\n`);
  if (error instanceof Error && error.stack) ctx.err(`${error.stack}\n`);
  return EXIT_FAILURE;
}
