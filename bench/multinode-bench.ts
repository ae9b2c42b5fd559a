// Many-hosts benchmark (issue 15): spawn latency and throughput through a gateway vs straight
// to a node, in one run on one cluster (test/helpers/cluster.ts: three node daemons in network
// namespaces, TLS, token; one gateway), exec latency both ways (the gateway's own cost on a
// call), and the time a gateway takes to mark a node down after `kill -9`.
// All "hosts" share this machine's cores: spreading spawns over three nodes adds no CPU here,
// so the throughput rows show the gateway's overhead, not a multi-host speed-up.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { percentileOf } from '../src/core/fork.js';
import { startCluster, type Cluster, type ClusterHost } from '../test/helpers/cluster.js';

const TOKEN = 'multinode-bench-token-0123456789abcdef';
const HEALTH = { intervalMs: 500, timeoutMs: 500, downAfter: 2 };
const SNAPSHOT = 'mnb-base';

export interface LatencyRow {
  what: string;
  via: 'gateway' | 'direct';
  runs: number;
  p50Ms: number;
  p90Ms: number;
}

export interface ThroughputRow {
  via: 'gateway' | 'direct';
  spawns: number;
  concurrency: number;
  wallMs: number;
  perSecond: number;
  nodes: Record<string, number>;
}

export interface MultinodeBenchResult {
  namespaces: boolean;
  health: typeof HEALTH;
  latency: LatencyRow[];
  throughput: ThroughputRow[];
  detectMs: number[];
  detectBoundMs: number;
}

interface Sb {
  id: string;
  node?: string;
}

export async function multinodeBench(opts: {
  runs: number;
  burst: number;
  log: (s: string) => void;
}): Promise<MultinodeBenchResult> {
  const cluster = await startCluster({
    nodes: 3,
    gateways: 1,
    token: TOKEN,
    maxSandboxes: Math.max(opts.burst, 4),
    health: HEALTH,
    placementK: 3,
  });
  try {
    const node1 = cluster.hosts[0]!;
    await buildSnapshot(cluster, node1);
    await pullEverywhere(cluster);
    opts.log('snapshot on all 3 nodes');

    const direct = (method: string, path: string, json?: unknown) => cluster.nodeApi(node1, method, path, json);
    const viaGw = (method: string, path: string, json?: unknown) => cluster.gw(0, method, path, json);
    const latency: LatencyRow[] = [];
    for (const [via, call] of [
      ['direct', direct],
      ['gateway', viaGw],
    ] as const) {
      const spawnMs: number[] = [];
      const execMs: number[] = [];
      for (let i = 0; i < opts.runs; i++) {
        const t0 = performance.now();
        const sb = await spawnOne(call);
        spawnMs.push(performance.now() - t0);
        await call('POST', `/v1/sandboxes/${sb.id}/exec`, { args: ['true'] }); // first exec: translation warm-up
        for (let k = 0; k < 5; k++) {
          const t1 = performance.now();
          const r = await call('POST', `/v1/sandboxes/${sb.id}/exec`, { args: ['true'] });
          if (r.status !== 200) throw new Error(`exec via ${via}: ${r.status} ${r.text}`);
          execMs.push(performance.now() - t1);
        }
        await del(call, sb.id);
      }
      latency.push({ what: 'spawn (POST /v1/sandboxes, n=1)', via, runs: spawnMs.length, ...pcts(spawnMs) });
      latency.push({ what: 'exec `true` (warm)', via, runs: execMs.length, ...pcts(execMs) });
      opts.log(`${via}: spawn p50 ${pcts(spawnMs).p50Ms.toFixed(0)} ms, exec p50 ${pcts(execMs).p50Ms.toFixed(1)} ms`);
    }

    const throughput: ThroughputRow[] = [];
    for (const [via, call] of [
      ['direct', direct],
      ['gateway', viaGw],
    ] as const) {
      const concurrency = 4;
      const made: Sb[] = [];
      const t0 = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < opts.burst) {
            next++;
            made.push(await spawnOne(call));
          }
        }),
      );
      const wallMs = performance.now() - t0;
      const nodes: Record<string, number> = {};
      for (const s of made) nodes[s.node ?? node1.name] = (nodes[s.node ?? node1.name] ?? 0) + 1;
      throughput.push({
        via,
        spawns: made.length,
        concurrency,
        wallMs,
        perSecond: made.length / (wallMs / 1000),
        nodes,
      });
      opts.log(`${via}: ${made.length} spawns in ${wallMs.toFixed(0)} ms`);
      for (const s of made) await del(call, s.id);
    }

    const detectMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const victim = cluster.hosts[2]!;
      const t0 = Date.now();
      victim.proc.proc.kill('SIGKILL');
      await victim.proc.stop();
      while (!(await cluster.nodeUp(0, victim.name, false))) {
        if (Date.now() - t0 > 60_000) throw new Error(`${victim.name} not marked down within 60 s`);
        await sleep(20);
      }
      detectMs.push(Date.now() - t0);
      opts.log(`${victim.name} marked down ${detectMs.at(-1)} ms after kill -9`);
      await cluster.restartHost(2);
      while (!(await cluster.nodeUp(0, victim.name, true))) await sleep(50);
    }
    return {
      namespaces: cluster.namespaces,
      health: HEALTH,
      latency,
      throughput,
      detectMs,
      detectBoundMs: HEALTH.intervalMs * HEALTH.downAfter + HEALTH.timeoutMs,
    };
  } finally {
    await cluster.stop();
  }
}

type Call = (method: string, path: string, json?: unknown) => ReturnType<Cluster['gw']>;

async function spawnOne(call: Call): Promise<Sb> {
  const r = await call('POST', '/v1/sandboxes', { snapshot_tag: SNAPSHOT });
  if (r.status !== 201) throw new Error(`spawn: ${r.status} ${r.text}`);
  return (r.json as { sandboxes: Sb[] }).sandboxes[0]!;
}

async function del(call: Call, id: string): Promise<void> {
  const r = await call('DELETE', `/v1/sandboxes/${id}`);
  if (r.status !== 204) throw new Error(`delete ${id}: ${r.status} ${r.text}`);
}

async function buildSnapshot(cluster: Cluster, h: ClusterHost): Promise<void> {
  const r = await cluster.nodeApi(h, 'POST', '/v1/snapshots', { tag: SNAPSHOT, image: 'default', mem_mib: 256 });
  if (r.status !== 202) throw new Error(`snapshot: ${r.status} ${r.text}`);
  for (;;) {
    const s = (await cluster.nodeApi(h, 'GET', `/v1/snapshots/${SNAPSHOT}`)).json as { status: string; error: unknown };
    if (s.status === 'ready') return;
    if (s.status === 'failed') throw new Error(`snapshot failed: ${String(s.error)}`);
    await sleep(500);
  }
}

/** Fills every node through the gateway (each pulls the snapshot first), then empties them. */
async function pullEverywhere(cluster: Cluster): Promise<void> {
  const made: Sb[] = [];
  for (;;) {
    const snap = (await cluster.gw(0, 'GET', `/v1/snapshots/${SNAPSHOT}`)).json as { nodes: string[] };
    if (snap.nodes.length === cluster.hosts.length) break;
    made.push(await spawnOne((m, p, j) => cluster.gw(0, m, p, j)));
  }
  for (const s of made) await del((m, p, j) => cluster.gw(0, m, p, j), s.id);
}

function pcts(xs: number[]): { p50Ms: number; p90Ms: number } {
  return { p50Ms: percentileOf(xs, 0.5), p90Ms: percentileOf(xs, 0.9) };
}

export function multinodeMarkdown(r: MultinodeBenchResult): string {
  return [
    `- Cluster: 3 node daemons as 3 hosts (${r.namespaces ? 'network namespaces, each with its own address' : 'loopback addresses: no namespaces here'}), TLS and a bearer token, one gateway (health every ${r.health.intervalMs} ms, timeout ${r.health.timeoutMs} ms, down after ${r.health.downAfter} failures); image default, 256 MiB, snapshot already on every node.`,
    '- "direct" = the API of node-1 over TLS; "gateway" = the same calls through the gateway, which places spawns (best of 3) and forwards everything else to the sandbox\'s node.',
    "- All hosts share this machine's 2 cores: spreading over 3 nodes adds no CPU, so the throughput rows show the gateway's overhead, not a multi-host speed-up. The run shared the cores with other engineers' guests: differences of a few ms between rows are noise.",
    '',
    '| call | via | runs | p50 | p90 |',
    '|---|---|---|---|---|',
    ...r.latency.map(
      (x) => `| ${x.what} | ${x.via} | ${x.runs} | ${x.p50Ms.toFixed(1)} ms | ${x.p90Ms.toFixed(1)} ms |`,
    ),
    '',
    '| spawn burst | via | clients | wall | spawns/s | placed on |',
    '|---|---|---|---|---|---|',
    ...r.throughput.map(
      (x) =>
        `| ${x.spawns} | ${x.via} | ${x.concurrency} | ${x.wallMs.toFixed(0)} ms | ${x.perSecond.toFixed(2)} | ${Object.entries(
          x.nodes,
        )
          .sort()
          .map(([n, c]) => `${n}: ${c}`)
          .join(', ')} |`,
    ),
    '',
    `- Dead node detection (kill -9 of node-3 until the gateway's /metrics says down), ${r.detectMs.length} runs: ${r.detectMs.map((m) => `${m} ms`).join(', ')}; the configured bound is interval x down-after + timeout = ${r.detectBoundMs} ms.`,
  ].join('\n');
}
