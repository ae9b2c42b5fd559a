// Shared by the daemon-mode commands (spawn, ls, kill, exec, eval, cp, branch, snapshot
// create|ls|info|rm, mcp): the --url/--token/--ca flags, a Controller from them, and one-line
// errors for what the SDK throws (unreachable daemon, refused token, API codes).
import { readFile } from 'node:fs/promises';
import { loadClientConfig } from '../../lib/config.js';
import { ForkdError } from '../../lib/errors.js';
import { Controller, ForkdApiError } from '../../sdk/index.js';
import { EXIT_FAILURE, EXIT_USAGE, type CliContext } from '../command.js';

export const CLIENT_FLAGS = {
  url: { type: 'string' },
  token: { type: 'string' },
  ca: { type: 'string' },
} as const;

export const CLIENT_USAGE = '[--url URL] [--token TOKEN] [--ca FILE]';

export async function openController(values: {
  url?: string | undefined;
  token?: string | undefined;
  ca?: string | undefined;
}): Promise<Controller> {
  const cfg = loadClientConfig(values);
  let ca: Buffer | undefined;
  if (cfg.caFile !== undefined) {
    try {
      ca = await readFile(cfg.caFile);
    } catch (cause) {
      throw new ForkdError('invalid_argument', `cannot read the CA file ${cfg.caFile}: pass a PEM file to --ca`, {
        cause,
      });
    }
  }
  return new Controller({ url: cfg.url, token: cfg.token, ca });
}

const USAGE_API_CODES = new Set(['invalid_argument', 'invalid_tag', 'invalid_id']);

/** Runs a daemon command; an SDK error becomes one line on stderr and exit 1 (2 for bad input). */
export async function daemonCommand(name: string, ctx: CliContext, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof ForkdApiError)) throw err;
    ctx.err(`forkd ${name}: ${describeApiError(err)}\n`);
    return USAGE_API_CODES.has(err.code) ? EXIT_USAGE : EXIT_FAILURE;
  }
}

export function describeApiError(err: ForkdApiError): string {
  switch (err.code) {
    case 'unreachable':
      return `${err.message} (is forkd-controller running? set --url or FORKD_URL)`;
    case 'unauthorized':
      return `the daemon refused the token (401 unauthorized): pass --token or set FORKD_TOKEN`;
    default:
      return err.status > 0 ? `${err.message} (${err.code}, HTTP ${err.status})` : err.message;
  }
}

export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
