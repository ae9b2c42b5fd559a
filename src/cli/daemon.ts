// Daemon mode: the one rule that picks it, a Controller from --url/--token/--ca/--timeout, and
// one-line messages for what the SDK throws (unreachable or silent daemon, refused token).
import { readFile } from 'node:fs/promises';
import { loadClientConfig } from '../lib/config.js';
import { ForkdError } from '../lib/errors.js';
import { Controller, DEFAULT_URL, type ForkdApiError } from 'forkd';
import { numberFlag } from './args.js';
import type { CliContext, Mode } from './command.js';
import {
  DEFAULT_CALL_TIMEOUT_SECS,
  parseFlags,
  rejectOtherModeFlags,
  type FlagSpec,
  type FlagTable,
  type FlagValues,
} from './flags.js';

/** The rule as `forkd --help` states it (paragraphs); `chooseMode` below is its code. */
export const MODE_RULE = [
  "Local or daemon: with --url URL or FORKD_URL set, the snapshot commands and sandbox run talk to that forkd-controller; otherwise they work on this host's data dir (--data-dir, FORKD_DATA_DIR).",
  `Sandboxes outlive a command only in a daemon, so the other sandbox commands and mcp always use one: --url, else FORKD_URL, else ${DEFAULT_URL}. The host and pack commands always work on this host.`,
  'Every daemon call has a deadline, --timeout SECS: 30 by default; 600 for sandbox spawn, sandbox run and sandbox branch, which restore or save VMs; 120 for sandbox cp.',
];

/** --url or FORKD_URL set: daemon; otherwise local. An old command name may pin its old mode. */
export function chooseMode(ctx: CliContext, values: { url?: string | undefined }): Mode {
  if (ctx.pinnedMode !== undefined) return ctx.pinnedMode;
  return loadClientConfig({ url: values.url }).url !== undefined ? 'daemon' : 'local';
}

/**
 * A command that works in both modes: its flags, the mode they and the environment choose
 * (`chooseMode`), and a usage error for a flag that belongs to the other mode.
 */
export function parseModeFlags<F extends FlagTable & { readonly url: FlagSpec }>(
  ctx: CliContext,
  argv: string[],
  flags: F,
  opts: { positionals?: boolean } = {},
): { values: FlagValues<F>; positionals: string[]; mode: Mode } {
  const { values, positionals } = parseFlags(argv, flags, opts);
  const url: unknown = values.url;
  const mode = chooseMode(ctx, { url: typeof url === 'string' ? url : undefined });
  rejectOtherModeFlags(flags, values, mode);
  return { values, positionals, mode };
}

export interface ClientValues {
  url?: string | undefined;
  token?: string | undefined;
  ca?: string | undefined;
  timeout?: string | undefined;
}

/** Seconds, decimals allowed (0.5); the deadline of each call, in ms. */
export function timeoutMsFlag(raw: string | undefined, defaultSecs: number): number {
  return Math.round((numberFlag('timeout', raw, { min: 0.1, max: 86_400 }) ?? defaultSecs) * 1000);
}

/** A Controller whose calls are bounded by --timeout (or `defaultTimeoutSecs`). */
export async function openController(
  values: ClientValues,
  defaultTimeoutSecs: number = DEFAULT_CALL_TIMEOUT_SECS,
): Promise<Controller> {
  const timeoutMs = timeoutMsFlag(values.timeout, defaultTimeoutSecs);
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
  return new Controller({ url: cfg.url, token: cfg.token, ca, requestTimeoutMs: timeoutMs });
}

export function describeApiError(err: ForkdApiError): string {
  switch (err.code) {
    case 'unreachable':
      return `${err.message} (is forkd-controller running? set --url or FORKD_URL)`;
    case 'unauthorized':
      return `the daemon refused the token (401 unauthorized): pass --token or set FORKD_TOKEN`;
    case 'client_timeout':
      return `${err.message} (is the daemon stuck or overloaded? --timeout SECS waits longer)`;
    default:
      return err.status > 0 ? `${err.message} (${err.code}, HTTP ${err.status})` : err.message;
  }
}

export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** A `key: value` table of a JSON object (nulls as "-", arrays comma-separated). */
export function fieldTable(o: Record<string, unknown>): string {
  return table(Object.entries(o).map(([k, v]) => [`${k}:`, fieldText(v)]));
}

function fieldText(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v)) return v.length === 0 ? '-' : v.map((x) => JSON.stringify(x)).join(', ');
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
