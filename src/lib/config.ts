// The only file that reads process.env (STYLE rule 7). Everything else receives a frozen,
// typed config object. Units are in the names.
import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { ForkdError } from './errors.js';
import type { LogLevel } from './log.js';

export interface LocalConfig {
  /** Root of all state: images/, snapshots/, run/, cache/. */
  readonly dataDir: string;
  readonly logLevel: LogLevel;
  /** Name of the unprivileged user QEMU runs as. */
  readonly vmUser: string;
  /** Force an accelerator instead of detecting it ("kvm" | "tcg"); for tests and odd hosts. */
  readonly accelOverride: 'kvm' | 'tcg' | undefined;
}

export const DEFAULT_DATA_DIR = '/var/lib/forkd';
export const DEFAULT_VM_USER = 'forkd-vm';

export function env(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** Resolve the local config: explicit flag value first, then environment, then default. */
export function loadLocalConfig(flags: { dataDir?: string | undefined } = {}): LocalConfig {
  const dataDir = flags.dataDir ?? env('FORKD_DATA_DIR') ?? DEFAULT_DATA_DIR;
  const level = env('FORKD_LOG_LEVEL');
  const accel = env('FORKD_ACCEL');
  return Object.freeze({
    dataDir: isAbsolute(dataDir) ? dataDir : resolve(dataDir),
    logLevel: level === 'debug' || level === 'info' || level === 'warn' || level === 'error' ? level : 'warn',
    vmUser: env('FORKD_VM_USER') ?? DEFAULT_VM_USER,
    accelOverride: accel === 'kvm' || accel === 'tcg' ? accel : undefined,
  });
}

/** `forkd-controller serve` settings: each flag wins over its environment variable. */
export interface ControllerConfig {
  readonly local: LocalConfig;
  /** `host:port`, `[v6]:port` or `unix:/path`; parsed and checked by the API layer. */
  readonly bind: string;
  readonly tokenFile: string | undefined;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly auditLog: string;
  readonly branchConcurrency: number;
  readonly maxSandboxes: number;
  /** Child QEMUs kept started per hot snapshot, so a spawn only restores (core/parked-vmms.ts); 0: none. */
  readonly parkedVmms: number;
  /** Stop every sandbox on SIGTERM/SIGINT (default: they keep running and are re-adopted). */
  readonly killOnExit: boolean;
  /** Allow a non-loopback bind without TLS (loud warning). */
  readonly insecureNoTls: boolean;
  /** Egress policy of a per_child_netns sandbox whose spawn names none (allow-lists are per spawn only). */
  readonly defaultEgress: DefaultEgress;
  /** A client must have sent all request headers within this (FORKD_HTTP_HEADERS_TIMEOUT_MS). */
  readonly httpHeadersTimeoutMs: number;
  /** ... and the whole request, body included, within this (FORKD_HTTP_REQUEST_TIMEOUT_MS). */
  readonly httpRequestTimeoutMs: number;
  /** This node's name for a gateway (its key goes into every sandbox id); default: the host name. */
  readonly nodeName: string;
  /** Where the E2B-compatible API listens (`--e2b-bind`, FORKD_E2B_BIND); off when undefined. */
  readonly e2bBind: string | undefined;
}

export type DefaultEgress = 'allow' | 'deny';
/** The daemon's default egress unless --default-egress says otherwise: closed, open egress is a decision, not an accident. */
export const DEFAULT_DEFAULT_EGRESS: DefaultEgress = 'deny';

export interface ControllerFlags {
  bind?: string | undefined;
  dataDir?: string | undefined;
  tokenFile?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  auditLog?: string | undefined;
  branchConcurrency?: string | undefined;
  maxSandboxes?: string | undefined;
  parkedVmms?: string | undefined;
  killOnExit?: boolean | undefined;
  insecureNoTls?: boolean | undefined;
  defaultEgress?: string | undefined;
  nodeName?: string | undefined;
  e2bBind?: string | undefined;
}

export const DEFAULT_BIND = '127.0.0.1:8889';
export const DEFAULT_AUDIT_LOG = '/var/log/forkd/audit.log';
export const DEFAULT_BRANCH_CONCURRENCY = 4;
export const DEFAULT_MAX_SANDBOXES = 1000;
/** Off by default: parked QEMUs cost memory and CPU while nobody spawns (docs/API.md). */
export const DEFAULT_PARKED_VMMS = 0;
export const DEFAULT_HTTP_HEADERS_TIMEOUT_MS = 10_000;
/** Receiving a request: a 64 MiB upload on a slow link; responses may stream longer. */
export const DEFAULT_HTTP_REQUEST_TIMEOUT_MS = 300_000;

export function loadControllerConfig(flags: ControllerFlags = {}): ControllerConfig {
  const local = loadLocalConfig({ dataDir: flags.dataDir });
  const level = env('FORKD_LOG_LEVEL');
  const path = (p: string | undefined): string | undefined => (p === undefined ? undefined : resolve(p));
  return Object.freeze({
    // The daemon logs its start-up facts (bound address, auth, TLS) at info.
    local: Object.freeze({ ...local, logLevel: level === undefined ? 'info' : local.logLevel }),
    bind: flags.bind ?? env('FORKD_BIND') ?? DEFAULT_BIND,
    tokenFile: path(flags.tokenFile ?? env('FORKD_TOKEN_FILE')),
    tlsCert: path(flags.tlsCert ?? env('FORKD_TLS_CERT')),
    tlsKey: path(flags.tlsKey ?? env('FORKD_TLS_KEY')),
    auditLog: resolve(flags.auditLog ?? env('FORKD_AUDIT_LOG') ?? DEFAULT_AUDIT_LOG),
    branchConcurrency: intSetting(
      'branch-concurrency',
      flags.branchConcurrency ?? env('FORKD_BRANCH_CONCURRENCY'),
      DEFAULT_BRANCH_CONCURRENCY,
      { min: 1, max: 1024 },
    ),
    maxSandboxes: intSetting('max-sandboxes', flags.maxSandboxes ?? env('FORKD_MAX_SANDBOXES'), DEFAULT_MAX_SANDBOXES, {
      min: 1,
      max: 100_000,
    }),
    parkedVmms: intSetting('parked-vmms', flags.parkedVmms ?? env('FORKD_PARKED_VMMS'), DEFAULT_PARKED_VMMS, {
      min: 0,
      max: 64,
    }),
    killOnExit: flags.killOnExit ?? false,
    insecureNoTls: flags.insecureNoTls ?? false,
    defaultEgress: egressSetting(flags.defaultEgress ?? env('FORKD_DEFAULT_EGRESS')),
    ...httpTimeouts(),
    nodeName: nodeNameSetting(flags.nodeName ?? env('FORKD_NODE_NAME') ?? hostname()),
    e2bBind: flags.e2bBind ?? env('FORKD_E2B_BIND'),
  });
}

/** Tuning knobs without flags (tests use short ones): 100 ms to 1 h, headers <= request. */
function httpTimeouts(): { httpHeadersTimeoutMs: number; httpRequestTimeoutMs: number } {
  const ms = (name: string, def: number): number => {
    const raw = env(name);
    if (raw === undefined) return def;
    const n = /^\d{1,7}$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= 100 && n <= 3_600_000))
      throw new ForkdError(
        'invalid_argument',
        `${name} must be milliseconds from 100 to 3600000, got ${JSON.stringify(raw.slice(0, 64))}`,
      );
    return n;
  };
  const request = ms('FORKD_HTTP_REQUEST_TIMEOUT_MS', DEFAULT_HTTP_REQUEST_TIMEOUT_MS);
  const headers = Math.min(ms('FORKD_HTTP_HEADERS_TIMEOUT_MS', DEFAULT_HTTP_HEADERS_TIMEOUT_MS), request);
  return { httpHeadersTimeoutMs: headers, httpRequestTimeoutMs: request };
}

function nodeNameSetting(raw: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/.test(raw)) return raw;
  throw new ForkdError(
    'invalid_argument',
    `--node-name must be 1-253 of A-Z a-z 0-9 _ . -, starting with a letter or digit, got ${JSON.stringify(raw.slice(0, 64))}`,
  );
}

function egressSetting(raw: string | undefined): DefaultEgress {
  if (raw === undefined) return DEFAULT_DEFAULT_EGRESS;
  if (raw === 'allow' || raw === 'deny') return raw;
  throw new ForkdError(
    'invalid_argument',
    `--default-egress must be "allow" or "deny", got ${JSON.stringify(raw.slice(0, 64))} (allow-lists are given per spawn, in "egress")`,
  );
}

function intSetting(name: string, raw: string | undefined, def: number, range: { min: number; max: number }): number {
  if (raw === undefined) return def;
  const n = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= range.min && n <= range.max)) {
    throw new ForkdError(
      'invalid_argument',
      `--${name} must be a whole number from ${range.min} to ${range.max}, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

/** Where the CLI's daemon-mode commands (spawn, ls, exec, mcp, ...) find forkd-controller. */
export interface ClientConfig {
  /** `http://host:port`, `https://host:port` or `unix:/path`; undefined: the SDK's default. */
  readonly url: string | undefined;
  readonly token: string | undefined;
  /** PEM file of the CA that signed the daemon's certificate. */
  readonly caFile: string | undefined;
}

/** Flags win over FORKD_URL / FORKD_TOKEN / FORKD_CA. */
export function loadClientConfig(
  flags: { url?: string | undefined; token?: string | undefined; ca?: string | undefined } = {},
): ClientConfig {
  return Object.freeze({
    url: flags.url ?? env('FORKD_URL'),
    token: flags.token ?? env('FORKD_TOKEN'),
    caFile: flags.ca ?? env('FORKD_CA'),
  });
}

/** `forkd-controller gateway` settings: each flag wins over its environment variable. */
export interface GatewayConfig {
  readonly logLevel: LogLevel;
  readonly bind: string;
  /** Clients' bearer token (as a node's --token-file). */
  readonly tokenFile: string | undefined;
  /** The token the gateway sends to the nodes; default: tokenFile. */
  readonly nodeTokenFile: string | undefined;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  /** Plain HTTP off loopback, for the listener and to the nodes (trusted networks only). */
  readonly insecureNoTls: boolean;
  readonly auditLog: string;
  /** Static node URLs. */
  readonly nodes: string[];
  /** Discover nodes from the A records of this name (the headless Service). */
  readonly nodesDns: { name: string; port: number } | undefined;
  readonly nodeScheme: 'http' | 'https';
  readonly nodeCa: string | undefined;
  readonly nodeServername: string | undefined;
  readonly healthIntervalMs: number;
  readonly healthTimeoutMs: number;
  readonly downAfter: number;
  readonly placementK: number;
}

export interface GatewayFlags {
  bind?: string | undefined;
  tokenFile?: string | undefined;
  nodeTokenFile?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  insecureNoTls?: boolean | undefined;
  auditLog?: string | undefined;
  nodes?: string | undefined;
  nodesDns?: string | undefined;
  nodeScheme?: string | undefined;
  nodeCa?: string | undefined;
  nodeServername?: string | undefined;
  healthIntervalMs?: string | undefined;
  healthTimeoutMs?: string | undefined;
  downAfter?: string | undefined;
  placementK?: string | undefined;
}

export const DEFAULT_GATEWAY_BIND = '127.0.0.1:8890';
export const DEFAULT_GATEWAY_AUDIT_LOG = '/var/log/forkd/gateway-audit.log';

export function loadGatewayConfig(flags: GatewayFlags = {}): GatewayConfig {
  const level = env('FORKD_LOG_LEVEL');
  const path = (p: string | undefined): string | undefined => (p === undefined ? undefined : resolve(p));
  const nodes = (flags.nodes ?? env('FORKD_GATEWAY_NODES') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const dnsRaw = flags.nodesDns ?? env('FORKD_GATEWAY_NODES_DNS');
  let nodesDns: GatewayConfig['nodesDns'];
  if (dnsRaw !== undefined) {
    const m = /^([A-Za-z0-9.-]{1,253}):(\d{1,5})$/.exec(dnsRaw);
    if (!m || Number(m[2]) > 65535 || Number(m[2]) === 0)
      throw new ForkdError(
        'invalid_argument',
        `--nodes-dns must be NAME:PORT, got ${JSON.stringify(dnsRaw.slice(0, 80))}`,
      );
    nodesDns = { name: m[1]!, port: Number(m[2]) };
  }
  if (nodes.length === 0 && nodesDns === undefined)
    throw new ForkdError('invalid_argument', 'give the node daemons: --nodes URL[,URL...] or --nodes-dns NAME:PORT');
  const scheme = flags.nodeScheme ?? env('FORKD_GATEWAY_NODE_SCHEME') ?? 'https';
  if (scheme !== 'http' && scheme !== 'https')
    throw new ForkdError('invalid_argument', `--node-scheme must be http or https, got ${JSON.stringify(scheme)}`);
  const tokenFile = path(flags.tokenFile ?? env('FORKD_TOKEN_FILE'));
  return Object.freeze({
    logLevel: level === 'debug' || level === 'warn' || level === 'error' ? level : 'info',
    bind: flags.bind ?? env('FORKD_GATEWAY_BIND') ?? DEFAULT_GATEWAY_BIND,
    tokenFile,
    nodeTokenFile: path(flags.nodeTokenFile ?? env('FORKD_NODE_TOKEN_FILE')) ?? tokenFile,
    tlsCert: path(flags.tlsCert ?? env('FORKD_TLS_CERT')),
    tlsKey: path(flags.tlsKey ?? env('FORKD_TLS_KEY')),
    insecureNoTls: flags.insecureNoTls ?? false,
    auditLog: resolve(flags.auditLog ?? env('FORKD_AUDIT_LOG') ?? DEFAULT_GATEWAY_AUDIT_LOG),
    nodes,
    nodesDns,
    nodeScheme: scheme,
    nodeCa: path(flags.nodeCa ?? env('FORKD_NODE_CA')),
    nodeServername: flags.nodeServername ?? env('FORKD_NODE_SERVERNAME'),
    healthIntervalMs: intSetting('health-interval-ms', flags.healthIntervalMs, 2000, { min: 100, max: 600_000 }),
    healthTimeoutMs: intSetting('health-timeout-ms', flags.healthTimeoutMs, 1000, { min: 50, max: 60_000 }),
    downAfter: intSetting('down-after', flags.downAfter, 3, { min: 1, max: 100 }),
    placementK: intSetting('placement-k', flags.placementK, 2, { min: 1, max: 1000 }),
  });
}
