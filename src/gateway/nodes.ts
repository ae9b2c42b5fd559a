// The node daemons a gateway knows: discovered from a static list or from the A records of a
// name (the headless Service), health-checked every interval (GET /healthz within a deadline,
// then GET /v1/node for capacity and GET /v1/sandboxes for the inventory), marked down after
// `downAfter` failed checks in a row and up again at the first good one. A node is detected
// down within interval x downAfter + timeout. Everything here is soft state rebuilt from the
// nodes: a new gateway replica knows as much as an old one after its first round, except the
// sandboxes of a node that was already down before it started (it never saw them).
import { resolve4 as dnsResolve4 } from 'node:dns/promises';
import { isIP } from 'node:net';
import { ForkdError, messageOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { NodeClient } from './node-client.js';

export interface NodeInfoJson {
  name: string;
  key: string;
  version: string;
  accel: 'kvm' | 'tcg';
  qemu: string;
  cpus: number;
  memory: { total_bytes: number; available_bytes: number };
  sandboxes: { active: number; max: number };
  snapshots: string[];
  features: Record<string, boolean>;
}

export interface SandboxJson {
  id: string;
  snapshot_tag: string;
  state: string;
  created_at: string;
  reason: string | null;
  [k: string]: unknown;
}

export interface NodeState {
  url: string;
  up: boolean;
  /** At least one check has finished. */
  checked: boolean;
  failures: number;
  lastError: string | undefined;
  info: NodeInfoJson | undefined;
  /** Sandboxes as last listed by the node (shown as `lost` while it is down). */
  inventory: SandboxJson[];
  downSince: string | undefined;
  /** Spawns this gateway placed there that have not answered yet. */
  pending: number;
  /** Last time discovery listed it (static nodes: always now). */
  discoveredAt: number;
}

export interface NodeSetOptions {
  /** Static node URLs (http(s)://host:port). */
  nodes?: readonly string[];
  /** A records of `name` as `${scheme}://<ip>:${port}`. */
  dns?: { name: string; port: number; scheme: 'http' | 'https' } | undefined;
  intervalMs: number;
  timeoutMs: number;
  downAfter: number;
  /** A down node no longer listed by DNS is forgotten after this long. */
  forgetAfterMs?: number;
  /** Allow plain http to a non-loopback node (a trusted network only). */
  insecureNoTls: boolean;
  logger: Logger;
  resolve4?: (name: string) => Promise<string[]>;
}

/** Refuses plain http to a non-loopback node: the bearer token would cross the network in clear. */
export function checkNodeUrl(raw: string, insecureNoTls: boolean): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ForkdError('invalid_argument', `node URL ${JSON.stringify(raw.slice(0, 200))} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new ForkdError('invalid_argument', `node URL ${raw} must be http:// or https://`);
  if (u.pathname !== '/' || u.search !== '' || u.username !== '' || u.password !== '')
    throw new ForkdError('invalid_argument', `node URL ${raw}: give scheme://host:port only`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || (isIP(host) === 4 ? host.startsWith('127.') : host === '::1');
  if (u.protocol === 'http:' && !loopback && !insecureNoTls)
    throw new ForkdError(
      'invalid_argument',
      `refusing plain http to non-loopback node ${raw}: the bearer token would cross the network in clear; use https (--node-scheme https, --node-ca) or --insecure-no-tls on a trusted network`,
    );
  return `${u.protocol}//${u.host}`;
}

export class NodeSet {
  readonly #nodes = new Map<string, NodeState>();
  readonly #checking = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #first: Promise<void> | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;

  constructor(
    private readonly client: NodeClient,
    private readonly opts: NodeSetOptions,
  ) {
    for (const raw of opts.nodes ?? []) this.#add(checkNodeUrl(raw, opts.insecureNoTls));
  }

  /** First round now, then every interval. */
  start(): void {
    this.#first ??= this.#runRound();
    this.#timer ??= setInterval(() => {
      if (!this.#round) void this.#runRound();
    }, this.opts.intervalMs);
    this.#timer.unref();
  }

  /** Resolves once the first round of discovery and checks is done. */
  ready(): Promise<void> {
    this.start();
    return this.#first!;
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  all(): NodeState[] {
    return [...this.#nodes.values()];
  }

  up(): NodeState[] {
    return this.all().filter((n) => n.up && n.info !== undefined);
  }

  get(url: string): NodeState | undefined {
    return this.#nodes.get(url);
  }

  /** Name of a node for answers and logs: its --node-name once known, else its URL. */
  static label(n: NodeState): string {
    return n.info?.name ?? n.url;
  }

  /** Fresh capacity of one node (placement asks the K candidates right before choosing). */
  async refreshInfo(node: NodeState): Promise<NodeInfoJson> {
    const { json } = await this.client.json<NodeInfoJson>(node.url, {
      method: 'GET',
      path: '/v1/node',
      timeoutMs: this.opts.timeoutMs,
    });
    node.info = json;
    return json;
  }

  #add(url: string): NodeState {
    let n = this.#nodes.get(url);
    if (!n) {
      n = {
        url,
        up: false,
        checked: false,
        failures: 0,
        lastError: undefined,
        info: undefined,
        inventory: [],
        downSince: undefined,
        pending: 0,
        discoveredAt: Date.now(),
      };
      this.#nodes.set(url, n);
    }
    n.discoveredAt = Date.now();
    return n;
  }

  async #runRound(): Promise<void> {
    const round = (async () => {
      await this.#discover();
      await Promise.all(this.all().map((n) => this.#check(n)));
    })();
    this.#round = round;
    try {
      await round;
    } finally {
      this.#round = undefined;
    }
  }

  async #discover(): Promise<void> {
    const dns = this.opts.dns;
    if (!dns) return;
    let ips: string[];
    try {
      const resolve = this.opts.resolve4 ?? ((name: string) => dnsResolve4(name));
      ips = await Promise.race([
        resolve(dns.name),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('timed out')), this.opts.timeoutMs).unref(),
        ),
      ]);
    } catch (err) {
      this.opts.logger.warn('node discovery failed; keeping the nodes known so far', {
        name: dns.name,
        error: messageOf(err),
      });
      return;
    }
    for (const ip of ips) {
      try {
        this.#add(checkNodeUrl(`${dns.scheme}://${ip}:${dns.port}`, this.opts.insecureNoTls));
      } catch (err) {
        this.opts.logger.error('discovered node refused', { ip, error: messageOf(err) });
      }
    }
    // Gone from DNS: a down one is kept (its sandboxes show as lost) for a while, then forgotten.
    const listed = new Set(ips.map((ip) => `${dns.scheme}://${ip}:${dns.port}`));
    const forgetMs = this.opts.forgetAfterMs ?? 600_000;
    for (const n of this.all()) {
      if (listed.has(n.url) || n.up) continue;
      if (Date.now() - n.discoveredAt > forgetMs) this.#nodes.delete(n.url);
    }
  }

  async #check(n: NodeState): Promise<void> {
    if (this.#checking.has(n.url) || this.#stopped) return;
    this.#checking.add(n.url);
    try {
      const t = this.opts.timeoutMs;
      const health = await this.client.json<{ ok: boolean }>(n.url, { method: 'GET', path: '/healthz', timeoutMs: t });
      if (health.json?.ok !== true) throw new Error('GET /healthz did not answer {"ok":true}');
      const [info, list] = await Promise.all([
        this.client.json<NodeInfoJson>(n.url, { method: 'GET', path: '/v1/node', timeoutMs: t }),
        this.client.json<{ sandboxes: SandboxJson[] }>(n.url, { method: 'GET', path: '/v1/sandboxes', timeoutMs: t }),
      ]);
      n.info = info.json;
      n.inventory = list.json.sandboxes;
      n.failures = 0;
      n.lastError = undefined;
      if (!n.up) {
        this.opts.logger.info('node up', { node: n.url, name: n.info.name, key: n.info.key });
        // The same node (by name) under an old address that is down now: forget the old one.
        for (const o of this.all()) if (o !== n && !o.up && o.info?.name === n.info.name) this.#nodes.delete(o.url);
      }
      n.up = true;
      n.downSince = undefined;
    } catch (err) {
      n.failures++;
      n.lastError = messageOf(err);
      if (n.up && n.failures >= this.opts.downAfter) {
        n.up = false;
        n.downSince = new Date().toISOString();
        this.opts.logger.warn('node down', {
          node: n.url,
          name: n.info?.name,
          failures: n.failures,
          error: n.lastError,
        });
      } else if (!n.checked) {
        n.downSince ??= new Date().toISOString();
      }
    } finally {
      n.checked = true;
      this.#checking.delete(n.url);
    }
  }
}
