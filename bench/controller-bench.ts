// Controller benchmark (issue 4): spawn N = 1 and N = 50 sandboxes over REST
// (POST /v1/sandboxes answers once every child's agent answered; then every child is pinged
// through the API) beside the same fork in local mode (forkChildren in this process, then
// every agent pinged directly). Same snapshot, same host, one after the other.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreContext } from '../src/core/context.js';
import { disposeAll, forkChildren } from '../src/core/fork.js';

const CONTROLLER = fileURLToPath(new URL('../src/bin/forkd-controller.js', import.meta.url));

export interface ControllerRow {
  mode: 'rest' | 'local';
  n: number;
  ready: number;
  /** REST: POST until its 201 (every child ready). Local: forkChildren until it returned. */
  spawnMs: number;
  /** spawn + one ping of every child (REST: POST .../ping each; local: agent.ping each). */
  allAnswerMs: number;
  /** Deleting / disposing all of them. */
  teardownMs: number;
}

export interface ControllerBenchResult {
  rows: ControllerRow[];
  repeatsN1: number;
}

interface Reply {
  status: number;
  body: string;
}

function call(address: string, method: string, path: string, json?: unknown): Promise<Reply> {
  const [host, port] = address.split(':');
  const payload = json === undefined ? undefined : Buffer.from(JSON.stringify(json));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        method,
        path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function startDaemon(dataDir: string, auditLog: string): Promise<{ proc: ChildProcess; address: string }> {
  const proc = spawn(
    process.execPath,
    [CONTROLLER, 'serve', '--bind', '127.0.0.1:0', '--data-dir', dataDir, '--audit-log', auditLog],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, FORKD_LOG_LEVEL: 'info' } },
  );
  let err = '';
  proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
  for (let i = 0; i < 600; i++) {
    const line = err.split('\n').find((l) => l.includes('"msg":"listening"'));
    if (line) return { proc, address: (JSON.parse(line) as { address: string }).address };
    if (proc.exitCode !== null) break;
    await sleep(100);
  }
  proc.kill('SIGKILL');
  throw new Error(`forkd-controller did not start:\n${err}`);
}

async function restOnce(address: string, tag: string, n: number): Promise<ControllerRow> {
  const t0 = performance.now();
  const res = await call(address, 'POST', '/v1/sandboxes', { snapshot_tag: tag, n });
  const tSpawned = performance.now();
  if (res.status !== 201) throw new Error(`POST /v1/sandboxes: ${res.status} ${res.body.slice(0, 500)}`);
  const boxes = (JSON.parse(res.body) as { sandboxes: { id: string; state: string }[] }).sandboxes;
  const running = boxes.filter((b) => b.state === 'running');
  const pings = await Promise.all(running.map((b) => call(address, 'POST', `/v1/sandboxes/${b.id}/ping`)));
  const tAnswered = performance.now();
  await Promise.all(boxes.map((b) => call(address, 'DELETE', `/v1/sandboxes/${b.id}`)));
  const tGone = performance.now();
  return {
    mode: 'rest',
    n,
    ready: pings.filter((p) => p.status === 200).length,
    spawnMs: tSpawned - t0,
    allAnswerMs: tAnswered - t0,
    teardownMs: tGone - tAnswered,
  };
}

async function localOnce(core: CoreContext, tag: string, n: number): Promise<ControllerRow> {
  const t0 = performance.now();
  const res = await forkChildren(core, { tag, n, readyTimeoutMs: 120_000 });
  const tSpawned = performance.now();
  const pings = await Promise.allSettled(res.children.map((c) => c.agent.ping()));
  const tAnswered = performance.now();
  await disposeAll(res.children);
  const tGone = performance.now();
  return {
    mode: 'local',
    n,
    ready: pings.filter((p) => p.status === 'fulfilled').length,
    spawnMs: tSpawned - t0,
    allAnswerMs: tAnswered - t0,
    teardownMs: tGone - tAnswered,
  };
}

export async function controllerBench(
  core: CoreContext,
  opts: { tag: string; ns: number[]; repeatsN1: number; log: (s: string) => void },
): Promise<ControllerBenchResult> {
  const scratch = await mkdtemp(join(tmpdir(), 'forkd-bench-ctl-'));
  const daemon = await startDaemon(core.config.dataDir, join(scratch, 'audit.log'));
  const rows: ControllerRow[] = [];
  try {
    for (const n of opts.ns) {
      const reps = n === 1 ? opts.repeatsN1 : 1;
      for (let i = 0; i < reps; i++) {
        // Alternate which mode goes first so neither always runs on a cooler host.
        const order = i % 2 === 0 ? (['rest', 'local'] as const) : (['local', 'rest'] as const);
        for (const mode of order) {
          const row =
            mode === 'rest' ? await restOnce(daemon.address, opts.tag, n) : await localOnce(core, opts.tag, n);
          rows.push(row);
          opts.log(
            `${mode} n=${n}: ${row.ready}/${n} answered, spawn ${Math.round(row.spawnMs)} ms, all answered ${Math.round(row.allAnswerMs)} ms`,
          );
          await sleep(1000); // let the torn-down QEMUs leave the CPU
        }
      }
    }
  } finally {
    daemon.proc.kill('SIGTERM');
    await new Promise((resolve) => daemon.proc.once('exit', resolve));
    await rm(scratch, { recursive: true, force: true });
  }
  return { rows, repeatsN1: opts.repeatsN1 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

export function controllerMarkdown(r: ControllerBenchResult): string {
  const ns = [...new Set(r.rows.map((x) => x.n))];
  const lines = [
    '| N | mode | answered | spawn (until every child ready) | + one ping of each | teardown |',
    '|---|---|---|---|---|---|',
  ];
  for (const n of ns) {
    for (const mode of ['rest', 'local'] as const) {
      const rows = r.rows.filter((x) => x.n === n && x.mode === mode);
      if (rows.length === 0) continue;
      const m = (f: (x: ControllerRow) => number): string => `${median(rows.map(f)).toFixed(0)} ms`;
      lines.push(
        `| ${n} | ${mode === 'rest' ? 'REST (forkd-controller)' : 'local (forkChildren)'} | ${Math.min(...rows.map((x) => x.ready))}/${n} | ${m((x) => x.spawnMs)} | ${m((x) => x.allAnswerMs)} | ${m((x) => x.teardownMs)} |`,
      );
    }
  }
  lines.push(
    '',
    `N=1 rows are medians of ${r.repeatsN1} runs per mode (alternating which mode goes first); N=50 is one run per mode.`,
  );
  return lines.join('\n');
}
