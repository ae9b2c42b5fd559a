// The gateway: the REST API v1 of a node daemon, in front of many. Requests go through the
// same pipeline as a node's (auth, validation against the OpenAPI document, audit, metrics);
// then a spawn is placed (placement.ts) and, if the chosen node lacks the snapshot, the node
// first receives it as a pack streamed from a node that has it (GET .../pack → PUT .../pack,
// sha256-checked by the receiver, then every check of `forkd unpack`); a call on a sandbox
// goes to the node whose key the id carries (lib/ids.ts: the node daemon puts its key in
// every id it makes); listings merge the nodes' answers, with the last-seen sandboxes of a
// node that is down shown as `lost`. The gateway keeps no state any other replica needs:
// what it knows about nodes is re-learnt from them every health interval.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { GatewayConfig } from '../lib/config.js';
import { ForkdError, messageOf } from '../lib/errors.js';
import { nodeKeyOfId } from '../lib/ids.js';
import { createLogger, type Logger } from '../lib/log.js';
import { FORKD_VERSION } from '../lib/version.js';
import { FEATURES } from '../core/api-surface.js';
import { AuditLog } from '../api/audit.js';
import { BearerAuth } from '../api/auth.js';
import { createPipeline, type Call, type Handler, type Reply } from '../api/http.js';
import { Metrics } from '../api/metrics.js';
import { OPENAPI_DOCUMENT } from '../api/openapi.js';
import { checkPosture, readTokenFile } from '../api/posture.js';
import { PACK_SHA256_HEADER } from '../api/routes-node.js';
import { listen } from '../api/server.js';
import { compileOperations, STREAM_TYPE } from '../api/validation.js';
import { NodeClient, nodeError, readText } from './node-client.js';
import { NodeSet, type NodeState, type SandboxJson } from './nodes.js';
import { bestOf, freeSlots, placementPool, sample, type Candidate } from './placement.js';

export interface Gateway {
  address: string;
  url: string;
  logger: Logger;
  nodes: NodeSet;
  shutdown(): Promise<void>;
  reopenAuditLog(): void;
}

/** Response headers of a node that a forwarded answer keeps. */
const FORWARDED_HEADERS = [
  'content-type',
  'content-length',
  'location',
  'retry-after',
  'cache-control',
  'x-content-type-options',
  PACK_SHA256_HEADER.toLowerCase(),
];
const ID_CACHE_MAX = 100_000;

interface SnapshotJson {
  tag: string;
  status: string;
  nodes?: string[];
  [k: string]: unknown;
}

export async function startGateway(cfg: GatewayConfig): Promise<Gateway> {
  const posture = checkPosture({ ...cfg, defaultEgress: 'deny' });
  const logger = createLogger({ level: cfg.logLevel, base: { component: 'forkd-gateway' } });
  for (const w of posture.warnings) {
    process.stderr.write(`\n*** WARNING: ${w} ***\n\n`);
    logger.warn(w);
  }
  const nodeToken = cfg.nodeTokenFile ? readTokenFile(cfg.nodeTokenFile) : undefined;
  const client = new NodeClient({
    token: nodeToken,
    ca: cfg.nodeCa ? readFileSync(cfg.nodeCa) : undefined,
    servername: cfg.nodeServername ?? (cfg.nodeScheme === 'https' ? cfg.nodesDns?.name : undefined),
  });
  const nodes = new NodeSet(client, {
    nodes: cfg.nodes,
    dns: cfg.nodesDns ? { ...cfg.nodesDns, scheme: cfg.nodeScheme } : undefined,
    intervalMs: cfg.healthIntervalMs,
    timeoutMs: cfg.healthTimeoutMs,
    downAfter: cfg.downAfter,
    insecureNoTls: cfg.insecureNoTls,
    logger,
  });
  const audit = AuditLog.open(cfg.auditLog, logger);
  const metrics = new Metrics({
    snapshots: () => {
      const tags = new Set(nodes.up().flatMap((n) => n.info?.snapshots ?? []));
      return Promise.resolve({ ready: tags.size });
    },
    sandboxes: () => {
      const out: Record<string, number> = {};
      for (const n of nodes.all())
        for (const s of n.inventory) {
          const state = n.up ? s.state : 'lost';
          out[state] = (out[state] ?? 0) + 1;
        }
      return out;
    },
    activeSandboxes: () => nodes.up().reduce((a, n) => a + (n.info?.sandboxes.active ?? 0), 0),
    branchesInFlight: () => 0,
    branchConcurrencyCap: () => 0,
    buildInfo: () => ({ version: FORKD_VERSION, node: process.version, role: 'gateway' }),
  });
  const handlers = gatewayHandlers({ client, nodes, metrics, logger, placementK: cfg.placementK });
  const pipeline = createPipeline({
    operations: compileOperations(),
    handlers,
    auth: new BearerAuth(posture.token),
    audit,
    metrics,
    logger,
  });
  nodes.start();
  const listening = await listen(posture.bind, posture.tls, pipeline);
  for (const note of posture.notes) if (!note.includes('egress')) logger.info(note);
  createLogger({ level: 'info', base: { component: 'forkd-gateway' } }).info('listening', {
    address: listening.address,
    url: listening.url,
    tls: posture.tls !== undefined,
    auth: posture.token !== undefined,
    nodes: cfg.nodes,
    nodes_dns: cfg.nodesDns ? `${cfg.nodesDns.name}:${cfg.nodesDns.port}` : null,
    health_interval_ms: cfg.healthIntervalMs,
    health_timeout_ms: cfg.healthTimeoutMs,
    down_after: cfg.downAfter,
    placement_k: cfg.placementK,
    version: FORKD_VERSION,
  });
  let stopping: Promise<void> | undefined;
  return {
    address: listening.address,
    url: listening.url,
    logger,
    nodes,
    reopenAuditLog: () => {
      try {
        audit.reopen();
      } catch (err) {
        logger.error('cannot reopen the audit log', { error: messageOf(err) });
      }
    },
    shutdown: () =>
      (stopping ??= (async () => {
        nodes.stop();
        await drain(listening.server, 30_000);
        client.close();
        audit.close();
        logger.info('stopped');
      })()),
  };
}

async function drain(server: Server, ms: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), ms);
  timer.unref();
  await closed;
  clearTimeout(timer);
}

interface Deps {
  client: NodeClient;
  nodes: NodeSet;
  metrics: Metrics;
  logger: Logger;
  placementK: number;
}

/** `features` a spawn body asks for, as the nodes name them in GET /v1/node. */
function featuresOf(b: Record<string, unknown>): string[] {
  const out: string[] = [];
  if (b.memory_limit_mib !== undefined) out.push('memory_limit');
  if (b.cpu_limit !== undefined) out.push('cpu_limit');
  if (b.pids_limit !== undefined) out.push('pids_limit');
  if (b.per_child_netns === true) out.push('per_child_netns');
  return out;
}

function candidate(n: NodeState): Candidate {
  return {
    id: n.url,
    up: n.up && n.info !== undefined,
    active: n.info?.sandboxes.active ?? 0,
    max: n.info?.sandboxes.max ?? 0,
    pending: n.pending,
    availableBytes: n.info?.memory.available_bytes ?? 0,
    snapshots: n.info?.snapshots ?? [],
    features: n.info?.features ?? {},
  };
}

function byCreated(a: SandboxJson, b: SandboxJson): number {
  return a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id);
}

export function gatewayHandlers(deps: Deps): Record<string, Handler> {
  const { client, nodes, logger } = deps;
  /** id → node URL, a cache only: every entry can be found again from the id and the nodes. */
  const idCache = new Map<string, string>();
  const transfers = new Map<string, Promise<void>>();
  const label = (n: NodeState): string => NodeSet.label(n);

  const remember = (id: string, n: NodeState): void => {
    if (idCache.size >= ID_CACHE_MAX) idCache.delete(idCache.keys().next().value!);
    idCache.set(id, n.url);
  };

  const lostView = (n: NodeState, s: SandboxJson): SandboxJson => ({
    ...s,
    state: 'lost',
    reason: `node ${label(n)} unreachable since ${n.downSince ?? 'its last check'}${n.lastError ? ` (${n.lastError.slice(0, 200)})` : ''}; last known state ${s.state}`,
    node: label(n),
  });

  const upOrThrow = async (): Promise<NodeState[]> => {
    await nodes.ready();
    const up = nodes.up();
    if (up.length === 0) throw new ForkdError('unavailable', 'no node daemon is up; retry shortly');
    return up;
  };

  /** The node that runs sandbox `id`: by its key; asking nodes only when the key is ambiguous or unknown. */
  const nodeOf = async (id: string): Promise<NodeState> => {
    await nodes.ready();
    const cached = idCache.get(id);
    const hit = cached === undefined ? undefined : nodes.get(cached);
    if (hit) return hit;
    const key = nodeKeyOfId(id);
    const keyed = nodes.all().filter((n) => n.info?.key === key);
    if (keyed.length === 1) return keyed[0]!;
    const ask = (keyed.length > 1 ? keyed : nodes.all()).filter((n) => n.up);
    const answers = await Promise.all(
      ask.map(
        (n) =>
          client
            .json(n.url, { method: 'GET', path: `/v1/sandboxes/${id}`, timeoutMs: 10_000 })
            .then(() => n)
            .catch(() => undefined), // a node that does not answer is not the one holding it
      ),
    );
    const found = answers.find((n) => n !== undefined) ?? nodes.all().find((n) => n.inventory.some((s) => s.id === id));
    if (!found) throw new ForkdError('not_found', `sandbox ${id} not found; list sandboxes with GET /v1/sandboxes`);
    remember(id, found);
    return found;
  };

  const upNodeOf = async (id: string): Promise<NodeState> => {
    const n = await nodeOf(id);
    if (!n.up)
      throw new ForkdError(
        'unavailable',
        `sandbox ${id} runs on node ${label(n)}, which is down (since ${n.downSince ?? '?'}); it is listed as lost`,
        { details: { node: label(n) } },
      );
    return n;
  };

  /** The request as received (path and query), sent on to `n`; the node's answer streamed back. */
  const forward = async (call: Call, n: NodeState): Promise<Reply> => {
    const raw = call.res.req.url ?? '/';
    const body =
      call.op.bodyKind === 'json'
        ? call.body === undefined
          ? {}
          : { json: call.body }
        : call.op.bodyKind === 'binary'
          ? { body: call.body as Buffer, headers: { 'content-type': 'application/octet-stream' } }
          : call.op.bodyKind === 'stream'
            ? {
                body: call.res.req,
                headers: {
                  'content-type': STREAM_TYPE,
                  ...(call.res.req.headers['content-length']
                    ? { 'content-length': call.res.req.headers['content-length'] }
                    : {}),
                },
              }
            : {};
    const r = await client.request(n.url, {
      method: call.op.method.toUpperCase(),
      path: raw,
      signal: call.signal,
      ...body,
    });
    if (r.status === 401) {
      r.body.resume();
      throw nodeError(n.url, 401, undefined);
    }
    call.res.statusCode = r.status;
    for (const h of FORWARDED_HEADERS) {
      const v = r.headers[h];
      if (v !== undefined) call.res.setHeader(h, v);
    }
    call.res.setHeader('X-Forkd-Node', label(n));
    await pipeline(r.body, call.res).catch((err: unknown) => {
      logger.warn('forwarded answer broke off', { node: n.url, error: messageOf(err) });
      call.res.destroy();
    });
    return { streamed: true };
  };

  const getJson = <T>(n: NodeState, path: string, signal?: AbortSignal): Promise<T> =>
    client.json<T>(n.url, { method: 'GET', path, ...(signal ? { signal } : {}) }).then((r) => r.json);

  /** Every up node's answer (failures left out and logged). */
  const fanOut = async <T>(path: string, signal?: AbortSignal): Promise<{ node: NodeState; json: T }[]> => {
    const up = await upOrThrow();
    const got = await Promise.all(
      up.map((n) =>
        getJson<T>(n, path, signal).then(
          (json) => ({ node: n, json }),
          (err: unknown) => ({ node: n, err }),
        ),
      ),
    );
    const ok: { node: NodeState; json: T }[] = [];
    for (const g of got) {
      if ('json' in g) ok.push(g);
      else if (!(g.err instanceof ForkdError && g.err.code === 'not_found'))
        logger.warn('node answer left out', { node: g.node.url, path, error: messageOf(g.err) });
    }
    return ok;
  };

  const snapshotViews = async (tag: string): Promise<{ node: NodeState; json: SnapshotJson }[]> =>
    fanOut<SnapshotJson>(`/v1/snapshots/${tag}`);

  const mergeSnapshot = (views: { node: NodeState; json: SnapshotJson }[]): SnapshotJson => {
    const ready = views.filter((v) => v.json.status === 'ready');
    const pick = (ready[0] ?? views[0])!.json;
    return { ...pick, nodes: (ready.length > 0 ? ready : views).map((v) => label(v.node)) };
  };

  /** The target pulls `tag` from `source`: pack streamed through the gateway, checked by the target. */
  const transfer = (tag: string, source: NodeState, target: NodeState): Promise<void> => {
    const key = `${target.url}|${tag}`;
    let p = transfers.get(key);
    if (!p) {
      p = (async () => {
        const t0 = Date.now();
        const src = await client.request(source.url, { method: 'GET', path: `/v1/snapshots/${tag}/pack` });
        if (src.status !== 200) {
          const text = await readText(src.body, 1 << 20).catch(() => ''); // the status alone then makes the error
          throw nodeError(source.url, src.status, safeJson(text));
        }
        const sha = String(src.headers[PACK_SHA256_HEADER.toLowerCase()] ?? '');
        if (!/^[0-9a-f]{64}$/.test(sha)) {
          src.body.destroy();
          throw new ForkdError('unavailable', `node ${label(source)} sent a pack of ${tag} without its sha256`);
        }
        const length = src.headers['content-length'];
        const put = await client.request(target.url, {
          method: 'PUT',
          path: `/v1/snapshots/${tag}/pack?sha256=${sha}`,
          headers: { 'content-type': STREAM_TYPE, ...(length ? { 'content-length': String(length) } : {}) },
          body: src.body,
        });
        const text = await readText(put.body, 1 << 20);
        // Another gateway (or an earlier try) got it there first: the snapshot is there.
        if (put.status === 409 && safeJson(text)?.code === 'already_exists') return;
        if (put.status !== 201) throw nodeError(target.url, put.status, safeJson(text));
        target.info?.snapshots.push(tag);
        logger.info('snapshot moved', {
          tag,
          from: label(source),
          to: label(target),
          bytes: Number(length ?? 0),
          sha256: sha,
          ms: Date.now() - t0,
        });
      })().finally(() => transfers.delete(key));
      transfers.set(key, p);
    }
    return p;
  };

  /**
   * Best of K on fresh capacity: draw K from the pool the cached view allows, ask those K for
   * their capacity now (so concurrent spawns see each other), and take the best that still
   * has room; if none has, the cache was stale: recompute the pool (bounded).
   */
  const choose = async (ask: {
    tag: string;
    n: number;
    features: string[];
  }): Promise<{ target: NodeState; source: NodeState | undefined }> => {
    for (let attempt = 0; ; attempt++) {
      const up = await upOrThrow();
      let chosen: ReturnType<typeof placementPool>;
      try {
        chosen = placementPool(up.map(candidate), ask);
      } catch (err) {
        // A refusal on cached capacity may be stale (a snapshot just made, sandboxes deleted
        // since the last health round): ask every node once, then decide.
        const stale = err instanceof ForkdError && ['busy', 'not_found', 'feature_unavailable'].includes(err.code);
        if (!stale || attempt > 0) throw err;
        await Promise.all(up.map((n) => nodes.refreshInfo(n).catch(() => undefined))); // a node that cannot be refreshed keeps its last info; the health rounds mark it down
        continue;
      }
      const { pool, holders, source } = chosen;
      const drawn = sample(pool, deps.placementK);
      const fresh = await Promise.all(
        drawn.map((c) => {
          const n = nodes.get(c.id)!;
          return nodes.refreshInfo(n).then(
            () => candidate(n),
            () => undefined,
          );
        }),
      );
      const fit = fresh.filter(
        (c): c is Candidate =>
          c !== undefined &&
          freeSlots(c) >= ask.n &&
          ask.features.every((f) => c.features[f] === true) &&
          (!holders || c.snapshots.includes(ask.tag)),
      );
      if (fit.length > 0) {
        const target = nodes.get(bestOf(fit).id)!;
        return { target, source: holders ? undefined : nodes.get(source!) };
      }
      if (attempt >= 3) throw new ForkdError('busy', `no node has room for ${ask.n} more sandbox(es) right now; retry`);
    }
  };

  return {
    healthz: () => Promise.resolve({ status: 200, json: { ok: true } }),
    version: async () => {
      const n = (await upOrThrow())[0]!;
      return {
        status: 200,
        json: { version: FORKD_VERSION, api: 'v1', node: process.version, qemu: n.info!.qemu, accel: n.info!.accel },
      };
    },
    metrics: async () => {
      const all = nodes.all();
      const extra = [
        '# HELP forkd_gateway_nodes Node daemons known to this gateway by state.',
        '# TYPE forkd_gateway_nodes gauge',
        `forkd_gateway_nodes{state="up"} ${all.filter((n) => n.up).length}`,
        `forkd_gateway_nodes{state="down"} ${all.filter((n) => !n.up).length}`,
        '# HELP forkd_gateway_node_up 1 while the node passes its health checks.',
        '# TYPE forkd_gateway_node_up gauge',
        ...all.map((n) => `forkd_gateway_node_up{node="${label(n).replace(/["\\\n]/g, '_')}"} ${n.up ? 1 : 0}`),
      ];
      return {
        status: 200,
        text: `${await deps.metrics.render()}${extra.join('\n')}\n`,
        contentType: 'text/plain; version=0.0.4; charset=utf-8',
      };
    },
    openapi: () => Promise.resolve({ status: 200, json: OPENAPI_DOCUMENT }),
    capabilities: async () => {
      type Caps = {
        root: boolean;
        effective: string[];
        missing: string[];
        cgroup_mode: string;
        features: Record<string, { available: boolean; reason: string | null }>;
      };
      const all = await fanOut<Caps>('/v1/capabilities');
      if (all.length === 0) throw new ForkdError('unavailable', 'no node answered GET /v1/capabilities');
      const features = Object.fromEntries(
        FEATURES.map((f) => {
          const lacking = all.filter((a) => !a.json.features[f]?.available).map((a) => label(a.node));
          return [
            f,
            {
              available: lacking.length < all.length,
              reason: lacking.length === 0 ? null : `unavailable on ${lacking.join(', ')}`,
            },
          ];
        }),
      );
      return {
        status: 200,
        json: {
          root: all.every((a) => a.json.root),
          effective: all[0]!.json.effective.filter((c) => all.every((a) => a.json.effective.includes(c))),
          missing: [...new Set(all.flatMap((a) => a.json.missing))],
          cgroup_mode: all[0]!.json.cgroup_mode,
          features,
          probed_at: new Date().toISOString(),
        },
      };
    },
    nodeInfo: () =>
      Promise.reject(
        new ForkdError('not_found', 'this is a gateway, not a node: GET /v1/node on a node daemon (see /metrics here)'),
      ),

    listSnapshots: async ({ signal }) => {
      const all = await fanOut<{ snapshots: SnapshotJson[] }>('/v1/snapshots', signal);
      const byTag = new Map<string, { node: NodeState; json: SnapshotJson }[]>();
      for (const a of all)
        for (const s of a.json.snapshots) byTag.set(s.tag, [...(byTag.get(s.tag) ?? []), { node: a.node, json: s }]);
      const snapshots = [...byTag.keys()].sort().map((t) => mergeSnapshot(byTag.get(t)!));
      return { status: 200, json: { snapshots } };
    },
    getSnapshot: async ({ params }) => {
      const views = await snapshotViews(params.tag!);
      if (views.length === 0)
        throw new ForkdError(
          'not_found',
          `snapshot ${params.tag!} not found on any node up; list with GET /v1/snapshots`,
        );
      return { status: 200, json: mergeSnapshot(views) };
    },
    createSnapshot: async (call) => {
      const tag = (call.body as { tag: string }).tag;
      const up = await upOrThrow();
      const existing = await snapshotViews(tag);
      if (existing.some((v) => v.json.status !== 'failed'))
        throw new ForkdError(
          'already_exists',
          `snapshot ${tag} exists on ${existing.map((v) => label(v.node)).join(', ')}; pick another tag`,
        );
      const target = bestOf(sample(up.map(candidate), deps.placementK));
      return forward(call, nodes.get(target.id)!);
    },
    deleteSnapshot: async ({ params, query }) => {
      const tag = params.tag!;
      const holders = await snapshotViews(tag);
      if (holders.length === 0) throw new ForkdError('not_found', `snapshot ${tag} not found on any node up`);
      const qs = new URLSearchParams(query).toString();
      const deleted = new Set<string>();
      let firstError: Error | undefined;
      for (const h of holders) {
        try {
          const r = await client.json<{ deleted: string[] }>(h.node.url, {
            method: 'DELETE',
            path: `/v1/snapshots/${tag}${qs ? `?${qs}` : ''}`,
          });
          for (const t of r.json.deleted) deleted.add(t);
          if (h.node.info) h.node.info.snapshots = h.node.info.snapshots.filter((t) => !r.json.deleted.includes(t));
        } catch (err) {
          firstError ??= err instanceof Error ? err : new Error(String(err));
        }
      }
      if (firstError !== undefined) throw firstError;
      return { status: 200, json: { deleted: [...deleted] } };
    },
    getSnapshotPack: async (call) => {
      const views = (await snapshotViews(call.params.tag!)).filter((v) => v.json.status === 'ready');
      if (views.length === 0) throw new ForkdError('not_found', `snapshot ${call.params.tag!} is ready on no node up`);
      return forward(call, views[0]!.node);
    },
    putSnapshotPack: async (call) => {
      const up = await upOrThrow();
      const target = bestOf(sample(up.map(candidate), deps.placementK));
      return forward(call, nodes.get(target.id)!);
    },

    listSandboxes: async ({ query, signal }) => {
      // Even with every node down the answer is the lost sandboxes, not a 503.
      await nodes.ready();
      const up = nodes.up();
      const wantLost = query.state === undefined || query.state === 'lost';
      const qs = new URLSearchParams(query).toString();
      const answers =
        query.state === 'lost'
          ? []
          : await Promise.all(
              up.map((n) =>
                getJson<{ sandboxes: SandboxJson[] }>(n, `/v1/sandboxes${qs ? `?${qs}` : ''}`, signal).then(
                  (j) => ({ node: n, rows: j.sandboxes }),
                  () => ({ node: n, rows: undefined }),
                ),
              ),
            );
      const rows: SandboxJson[] = [];
      const answered = new Set<NodeState>();
      for (const a of answers) {
        if (!a.rows) continue;
        answered.add(a.node);
        for (const s of a.rows) {
          remember(s.id, a.node);
          rows.push({ ...s, node: label(a.node) });
        }
      }
      if (wantLost)
        for (const n of nodes.all()) {
          if (answered.has(n) || (n.up && query.state !== 'lost')) continue;
          for (const s of n.inventory)
            if (query.snapshot_tag === undefined || s.snapshot_tag === query.snapshot_tag) rows.push(lostView(n, s));
        }
      return { status: 200, json: { sandboxes: rows.sort(byCreated) } };
    },
    getSandbox: async ({ params, signal }) => {
      const id = params.id!;
      const n = await nodeOf(id);
      if (!n.up) {
        const last = n.inventory.find((s) => s.id === id);
        if (last) return { status: 200, json: lostView(n, last) };
        throw new ForkdError('unavailable', `sandbox ${id}'s node ${label(n)} is down`);
      }
      const row = await getJson<SandboxJson>(n, `/v1/sandboxes/${id}`, signal);
      return { status: 200, json: { ...row, node: label(n) } };
    },
    createSandboxes: async ({ body, signal }) => {
      const b = body as Record<string, unknown> & { snapshot_tag: string; n: number };
      const ask = { tag: b.snapshot_tag, n: b.n, features: featuresOf(b) };
      const { target, source } = await choose(ask);
      if (source) await transfer(b.snapshot_tag, source, target);
      target.pending += b.n;
      let created: { sandboxes: SandboxJson[]; warnings: string[] };
      try {
        created = (
          await client.json<typeof created>(target.url, { method: 'POST', path: '/v1/sandboxes', json: b, signal })
        ).json;
      } finally {
        target.pending -= b.n;
      }
      for (const s of created.sandboxes) remember(s.id, target);
      // Until the next health round refreshes it.
      if (target.info) target.info.sandboxes.active += created.sandboxes.length;
      return {
        status: 201,
        json: { ...created, sandboxes: created.sandboxes.map((s) => ({ ...s, node: label(target) })) },
      };
    },
    deleteSandbox: async (call) => {
      const n = await upNodeOf(call.params.id!);
      const r = await forward(call, n);
      idCache.delete(call.params.id!);
      if (call.res.statusCode === 204 && n.info) n.info.sandboxes.active = Math.max(0, n.info.sandboxes.active - 1);
      return r;
    },
    branchSandbox: async (call) => forward(call, await upNodeOf(call.params.id!)),
    exec: async (call) => forward(call, await upNodeOf(call.params.id!)),
    execStream: async (call) => forward(call, await upNodeOf(call.params.id!)),
    eval: async (call) => forward(call, await upNodeOf(call.params.id!)),
    ping: async (call) => forward(call, await upNodeOf(call.params.id!)),
    readFile: async (call) => forward(call, await upNodeOf(call.params.id!)),
    writeFile: async (call) => forward(call, await upNodeOf(call.params.id!)),
    removeFile: async (call) => forward(call, await upNodeOf(call.params.id!)),
    listFiles: async (call) => forward(call, await upNodeOf(call.params.id!)),
    statFile: async (call) => forward(call, await upNodeOf(call.params.id!)),
    makeDir: async (call) => forward(call, await upNodeOf(call.params.id!)),
    renameFile: async (call) => forward(call, await upNodeOf(call.params.id!)),
    setSandboxTtl: async (call) => forward(call, await upNodeOf(call.params.id!)),
    ...Object.fromEntries(
      [
        'listProcesses',
        'startProcess',
        'connectProcess',
        'processInput',
        'closeProcessInput',
        'signalProcess',
        'resizeProcess',
      ].map((op) => [op, async (call: Call) => forward(call, await upNodeOf(call.params.id!))]),
    ),
  };
}

function safeJson(text: string): { code?: string; error?: string } | undefined {
  try {
    return JSON.parse(text) as { code?: string; error?: string };
  } catch {
    // not JSON: the caller reports the status without a body
    return undefined;
  }
}
