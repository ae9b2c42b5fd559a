// A command's flags, declared once: `parseFlags` hands the table to node:util parseArgs (strict)
// and `flagLines` prints it for `--help`, so help cannot forget a flag. A flag's `default` is
// what help shows; applying it stays with the command (an absent flag often means "let the
// daemon decide", which a parseArgs default would hide).
import { parseArgs } from 'node:util';
import { ForkdError } from '../lib/errors.js';
import { FORK_N_RANGE } from '../lib/contract.js';
import { wrapText } from './args.js';
import type { Mode } from './command.js';

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** Placeholder for a string flag's value in help: TAG, SECS, DIR. */
  readonly value?: string;
  /** The default as help shows it (text: "512", "$FORKD_URL"). */
  readonly default?: string;
  /** For commands with both modes: the flag exists only in this one. */
  readonly mode?: Mode;
  readonly help: string;
}

export type FlagTable = Readonly<Record<string, FlagSpec>>;

type ValueOf<S extends FlagSpec> = S['type'] extends 'boolean'
  ? boolean
  : S['multiple'] extends true
    ? string[] | undefined
    : string | undefined;

export type FlagValues<F extends FlagTable> = { -readonly [K in keyof F]: ValueOf<F[K]> };

export function parseFlags<F extends FlagTable>(
  argv: string[],
  flags: F,
  opts: { positionals?: boolean } = {},
): { values: FlagValues<F>; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: boolean }> =
    {};
  for (const [name, f] of Object.entries(flags)) {
    options[name] = {
      type: f.type,
      ...(f.short !== undefined ? { short: f.short } : {}),
      ...(f.multiple ? { multiple: true } : {}),
      ...(f.type === 'boolean' ? { default: false } : {}),
    };
  }
  const { values, positionals } = parseArgs({
    args: argv,
    options,
    strict: true,
    allowPositionals: opts.positionals ?? false,
  });
  return { values: values as FlagValues<F>, positionals };
}

/** A usage error for a flag given in the mode it does not belong to. */
export function rejectOtherModeFlags(flags: FlagTable, values: Record<string, unknown>, mode: Mode): void {
  for (const [name, f] of Object.entries(flags)) {
    const v = values[name];
    const given = v === true || typeof v === 'string' || (Array.isArray(v) && v.length > 0);
    if (!given || f.mode === undefined || f.mode === mode) continue;
    throw new ForkdError(
      'invalid_argument',
      f.mode === 'daemon'
        ? `--${name} is a daemon-mode flag; set --url or FORKD_URL to talk to a daemon`
        : `--${name} is a local-mode flag, but --url or FORKD_URL selects a daemon; unset them to work on this host`,
    );
  }
}

function flagName(name: string, f: FlagSpec): string {
  const long = `--${name}${f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : ''}`;
  if (f.short === undefined) return long;
  // `-n N` reads better than `-n, --n N` when the long name is the letter itself.
  return f.short === name ? long.slice(1) : `-${f.short}, ${long}`;
}

/** Columns help text is wrapped to. */
export const HELP_WIDTH = 100;

/** Help lines for the flags: common ones first, then a section per mode when a command has both. */
export function flagLines(flags: FlagTable): string[] {
  const entries = Object.entries(flags);
  const width = Math.min(28, Math.max(...entries.map(([n, f]) => flagName(n, f).length)));
  const line = ([n, f]: [string, FlagSpec]): string => {
    const name = flagName(n, f);
    const text = `${f.help}${f.multiple ? '; repeatable' : ''}${f.default !== undefined ? ` (default: ${f.default})` : ''}`;
    const [first = '', ...more] = wrapText(text, HELP_WIDTH - width - 4);
    const pad = ' '.repeat(width + 4);
    const head = name.length > width ? `  ${name}\n${pad}${first}` : `  ${name.padEnd(width)}  ${first}`;
    return [head, ...more.map((l) => pad + l)].join('\n');
  };
  const common = entries.filter(([, f]) => f.mode === undefined);
  const local = entries.filter(([, f]) => f.mode === 'local');
  const daemon = entries.filter(([, f]) => f.mode === 'daemon');
  const split = local.length > 0 && daemon.length > 0;
  if (!split) return ['flags:', ...entries.map(line)];
  return [
    'flags:',
    ...common.map(line),
    'local mode (no --url, no FORKD_URL):',
    ...local.map(line),
    'daemon mode (--url or FORKD_URL):',
    ...daemon.map(line),
  ];
}

// Flags many commands share.

export const JSON_FLAG = { type: 'boolean', help: 'print JSON instead of text' } as const;

/** `-n N`: how many sandboxes a command starts (the API's `n`). */
export const N_FLAG = {
  type: 'string',
  short: 'n',
  value: 'N',
  default: String(FORK_N_RANGE.default),
  help: `how many sandboxes, ${FORK_N_RANGE.min} to ${FORK_N_RANGE.max}`,
} as const;

export const DATA_DIR_FLAG = {
  type: 'string',
  value: 'DIR',
  default: '$FORKD_DATA_DIR, else /var/lib/forkd',
  help: "forkd's state on this host",
} as const;

/** `--data-dir` of a command that has a daemon mode too. */
export const LOCAL_DATA_DIR_FLAG = { ...DATA_DIR_FLAG, mode: 'local' } as const;

export const DEFAULT_CALL_TIMEOUT_SECS = 30;

/** --url/--token/--ca/--timeout. `timeoutSecs` is this command's default deadline per call. */
export function clientFlags(timeoutSecs: number = DEFAULT_CALL_TIMEOUT_SECS) {
  return {
    url: {
      type: 'string',
      value: 'URL',
      mode: 'daemon',
      default: '$FORKD_URL',
      help: 'the daemon: http://host:port, https://host:port or unix:/path',
    },
    token: { type: 'string', value: 'TOKEN', mode: 'daemon', default: '$FORKD_TOKEN', help: 'bearer token' },
    ca: {
      type: 'string',
      value: 'FILE',
      mode: 'daemon',
      default: '$FORKD_CA',
      help: "PEM CA that signed an https daemon's certificate",
    },
    timeout: {
      type: 'string',
      value: 'SECS',
      mode: 'daemon',
      default: String(timeoutSecs),
      help: 'deadline of each call to the daemon: a daemon silent that long is an error naming its URL',
    },
  } as const;
}
