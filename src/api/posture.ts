// Start-up refusals: the daemon will not start in a posture the security doc forbids. Every
// problem is one line naming what is wrong and what to do; the caller prints them all and
// exits non-zero. Nothing here logs or returns the token except to the auth layer.
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { ControllerConfig } from '../lib/config.js';
import { messageOf } from '../lib/errors.js';
import { bindText, isLocalOnly, parseBind, type Bind } from './bind.js';
import { tlsOptions } from './tls.js';

export const MIN_TOKEN_BYTES = 16;
const PLACEHOLDER_PREFIXES = ['REPLACE_ME', 'CHANGE_ME'];

export interface Posture {
  bind: Bind;
  token: string | undefined;
  tls: { cert: Buffer; key: Buffer } | undefined;
  /** Loud but not fatal (e.g. --insecure-no-tls on a public address). */
  warnings: string[];
  /** Facts for the start-up log. */
  notes: string[];
}

export class StartupRefusal extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

/** The settings the listener's posture depends on (the node daemon's and the gateway's alike). */
export type PostureConfig = Pick<
  ControllerConfig,
  'bind' | 'tokenFile' | 'tlsCert' | 'tlsKey' | 'insecureNoTls' | 'defaultEgress'
>;

export function checkPosture(cfg: PostureConfig): Posture {
  const problems: string[] = [];
  const warnings: string[] = [];
  const notes: string[] = [];
  let bind: Bind;
  try {
    bind = parseBind(cfg.bind);
  } catch (err) {
    throw new StartupRefusal([messageOf(err)]);
  }
  const where = bindText(bind);
  const local = isLocalOnly(bind);
  if (!local && !cfg.tokenFile) {
    problems.push(
      `refusing to listen on ${where} without --token-file: anyone who reaches it would control every sandbox; pass --token-file FILE (mode 0600) or bind 127.0.0.1`,
    );
  }
  if ((cfg.tlsCert === undefined) !== (cfg.tlsKey === undefined)) {
    problems.push('--tls-cert and --tls-key go together: give both (PEM files) or neither');
  }
  const tlsWanted = cfg.tlsCert !== undefined && cfg.tlsKey !== undefined;
  if (!local && !tlsWanted) {
    if (cfg.insecureNoTls) {
      warnings.push(
        `INSECURE: serving plain HTTP on non-loopback ${where} (--insecure-no-tls): the bearer token and all traffic cross the network in clear; use only behind a TLS-terminating proxy on a trusted network`,
      );
    } else {
      problems.push(
        `refusing plain HTTP on non-loopback ${where}: the bearer token would cross the network in clear; pass --tls-cert and --tls-key, or --insecure-no-tls if a trusted proxy terminates TLS`,
      );
    }
  }
  let token: string | undefined;
  if (cfg.tokenFile) token = readSecret(cfg.tokenFile, 'token file', problems, (t) => tokenProblem(t, cfg.tokenFile!));
  let tls: Posture['tls'];
  if (tlsWanted) {
    const key = readSecret(cfg.tlsKey, 'TLS key', problems, () => undefined);
    let cert: string | undefined;
    try {
      cert = readFileSync(cfg.tlsCert, 'utf8');
    } catch (err) {
      problems.push(`cannot read the TLS certificate ${cfg.tlsCert}: ${messageOf(err)}`);
    }
    if (key !== undefined && cert !== undefined) {
      tls = { cert: Buffer.from(cert), key: Buffer.from(key) };
      try {
        createSecureContext(tlsOptions(tls));
      } catch (err) {
        problems.push(
          `the TLS certificate ${cfg.tlsCert} and key ${cfg.tlsKey} are not usable together: ${messageOf(err)}`,
        );
      }
    }
  }
  if (problems.length > 0) throw new StartupRefusal(problems);
  notes.push(
    token
      ? 'bearer-token auth is on for every route but GET /healthz'
      : `auth is OFF: no --token-file, allowed only because ${where} is reachable from this host alone`,
  );
  notes.push(tls ? 'TLS is on (1.2 and 1.3, forward-secret AEAD suites only)' : 'TLS is off (plain HTTP)');
  notes.push(
    cfg.defaultEgress === 'allow'
      ? 'default egress is ALLOW: a per_child_netns sandbox whose spawn names no "egress" may reach any address but the always-blocked ones'
      : 'default egress is deny: a per_child_netns sandbox reaches nothing unless its spawn names an "egress" policy',
  );
  return { bind, token, tls, warnings, notes };
}

/** Reads a secret file after checking it is a regular file no group or other user can read. */
function readSecret(
  path: string,
  what: string,
  problems: string[],
  validate: (text: string) => string | undefined,
): string | undefined {
  let mode: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) {
      problems.push(`${what} ${path} is not a regular file`);
      return undefined;
    }
    mode = st.mode & 0o777;
  } catch (err) {
    problems.push(`cannot read the ${what} ${path}: ${messageOf(err)}`);
    return undefined;
  }
  if ((mode & 0o077) !== 0) {
    problems.push(
      `${what} ${path} is accessible to group or others (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${path}`,
    );
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`cannot read the ${what} ${path}: ${messageOf(err)}`);
    return undefined;
  }
  const trimmed = text.trim();
  const problem = validate(trimmed);
  if (problem) {
    problems.push(problem);
    return undefined;
  }
  return what === 'token file' ? trimmed : text;
}

export function tokenProblem(token: string, path: string): string | undefined {
  const fix = `write at least ${MIN_TOKEN_BYTES} random bytes, e.g.: openssl rand -hex 32 > ${path} && chmod 600 ${path}`;
  if (token.length === 0) return `token file ${path} is empty; ${fix}`;
  if (PLACEHOLDER_PREFIXES.some((p) => token.startsWith(p)))
    return `token file ${path} still holds a placeholder (${token.slice(0, 10)}...); ${fix}`;
  const bytes = Buffer.byteLength(token, 'utf8');
  if (bytes < MIN_TOKEN_BYTES) return `token in ${path} is only ${bytes} bytes; ${fix}`;
  return undefined;
}

/** A token file read with the daemon's rules (mode, placeholder, length); throws StartupRefusal. */
export function readTokenFile(path: string): string {
  const problems: string[] = [];
  const token = readSecret(path, 'token file', problems, (t) => tokenProblem(t, path));
  if (token === undefined) throw new StartupRefusal(problems);
  return token;
}
