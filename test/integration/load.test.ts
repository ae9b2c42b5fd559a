// Load against one real daemon with real guests (issue 14, point 1), loopback only, bounded in
// count and time: a spawn storm of 200 concurrent requests against --max-sandboxes 50 (exactly
// 50 run, the cap is never exceeded, every refusal is 503 busy with Retry-After); read traffic
// (/v1/sandboxes, /healthz, /metrics) and exec and file reads on 10 live sandboxes, all
// answered; 20 concurrent BRANCHes against --branch-concurrency 4 (4 made, 16 refused with
// Retry-After); the daemon's RSS and open fds bounded after it all; then the leak check.
// Figures (requests/s, p50/p99, statuses) go to the test log, and with FORKD_LOAD_RESULTS=PATH
// (npm run test:reliability -- --record) to PATH.json and PATH.md.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { findLeaks, ourQemuProcesses } from '../helpers/leaks.js';
import {
  api,
  buildSnapshotVia,
  controllerDataDir,
  daemonArgs,
  processFigures,
  startDaemon,
  type ApiResponse,
  type DaemonProcess,
} from '../helpers/controller.js';
import { uniqueTag } from '../helpers/env.js';
import { percentileOf } from '../../src/core/fork.js';

const MAX_SANDBOXES = 50;
const STORM = 200;
const BRANCH_CAP = 4;
const BRANCHES = 20;
/** Growth allowed after the whole run, sandboxes gone: a leak per request would exceed these. */
const FD_SLACK = 16;
const RSS_SLACK_MIB = 128;

interface Phase {
  name: string;
  requests: number;
  concurrency: number;
  wallMs: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  statuses: Record<string, number>;
}

interface ProcFigures {
  rssMiB: number;
  fds: number;
}

/** Runs `n` calls, at most `concurrency` at once; returns the figures and every response. */
async function phase(
  name: string,
  n: number,
  concurrency: number,
  call: (i: number) => Promise<ApiResponse>,
): Promise<{ figures: Phase; responses: ApiResponse[] }> {
  const ms: number[] = [];
  const responses: ApiResponse[] = new Array<ApiResponse>(n);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        const t = performance.now();
        responses[i] = await call(i);
        ms.push(performance.now() - t);
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const statuses: Record<string, number> = {};
  for (const r of responses) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  return {
    figures: {
      name,
      requests: n,
      concurrency,
      wallMs,
      perSecond: n / (wallMs / 1000),
      p50Ms: percentileOf(ms, 0.5),
      p99Ms: percentileOf(ms, 0.99),
      statuses,
    },
    responses,
  };
}

function markdown(r: { phases: Phase[]; proc: Record<string, ProcFigures>; maxActiveSeen: number }): string {
  return [
    '# Load: one daemon, real guests, loopback',
    '',
    `- Recorded ${new Date().toISOString()} by \`test/integration/load.test.ts\` (2 cores, TCG). Caps: --max-sandboxes ${MAX_SANDBOXES}, --branch-concurrency ${BRANCH_CAP}. Most active sandboxes seen during the storm: ${r.maxActiveSeen}.`,
    "- The read, exec and file phases ran with the storm's 50 guests alive: under TCG idle guests still take CPU (timer ticks), and the machine's 2 cores may be shared with other work, so the latencies are this host's under that load, not the daemon's floor.",
    '',
    '| phase | requests | concurrency | wall | requests/s | p50 | p99 | statuses |',
    '|---|---|---|---|---|---|---|---|',
    ...r.phases.map(
      (p) =>
        `| ${p.name} | ${p.requests} | ${p.concurrency} | ${p.wallMs.toFixed(0)} ms | ${p.perSecond.toFixed(1)} | ${p.p50Ms.toFixed(1)} ms | ${p.p99Ms.toFixed(1)} ms | ${Object.entries(
          p.statuses,
        )
          .map(([s, c]) => `${s}: ${c}`)
          .join(', ')} |`,
    ),
    '',
    '| daemon | RSS | open fds |',
    '|---|---|---|',
    ...Object.entries(r.proc).map(([when, f]) => `| ${when} | ${f.rssMiB.toFixed(0)} MiB | ${f.fds} |`),
    '',
  ].join('\n');
}

describe('load: a spawn storm, read and guest traffic, concurrent BRANCHes', () => {
  let root: string;
  let dataDir: string;
  let d: DaemonProcess;
  const tag = uniqueTag('it-load');
  const phases: Phase[] = [];
  const proc: Record<string, ProcFigures> = {};
  let maxActiveSeen = 0;
  let live: string[] = [];
  const call = (method: string, path: string, json?: unknown): Promise<ApiResponse> =>
    api(d.baseUrl, method, path, json === undefined ? {} : { json });
  const assertRefusal = (r: ApiResponse, code: string): void => {
    assert.equal(r.status, 503, r.text);
    assert.equal((r.json as { code: string }).code, code, r.text);
    assert.ok(Number(r.headers['retry-after']) > 0, `Retry-After on ${r.text}`);
  };

  before(async () => {
    ({ root, dataDir } = await controllerDataDir(true));
    d = await startDaemon(
      daemonArgs(dataDir, root, ['--max-sandboxes', String(MAX_SANDBOXES), '--branch-concurrency', String(BRANCH_CAP)]),
    );
    await buildSnapshotVia(d.baseUrl, { tag, mem_mib: 128 });
    proc.start = await processFigures(d.proc.pid!);
  });

  after(async () => {
    if (d.proc.exitCode === null) {
      const list = ((await call('GET', '/v1/sandboxes')).json as { sandboxes: { id: string }[] }).sandboxes;
      await Promise.all(list.map((s) => call('DELETE', `/v1/sandboxes/${s.id}`)));
      await call('DELETE', `/v1/snapshots/${tag}?cascade=true`);
      assert.equal(await d.stop(), 0);
    }
    const out = process.env.FORKD_LOAD_RESULTS;
    if (out && phases.length) {
      const result = { recordedAt: new Date().toISOString(), phases, proc, maxActiveSeen };
      await writeFile(`${out}.json`, `${JSON.stringify(result, null, 2)}\n`);
      await writeFile(`${out}.md`, markdown(result));
    }
    assert.deepEqual(await findLeaks(dataDir), []);
    assert.deepEqual(await ourQemuProcesses(root), []);
    await rm(root, { recursive: true, force: true });
  });

  test(`a storm of ${STORM} concurrent spawns against --max-sandboxes ${MAX_SANDBOXES}: exactly ${MAX_SANDBOXES} run, the rest 503 with Retry-After`, async (t) => {
    let storming = true;
    const watcher = (async () => {
      while (storming) {
        const m = (await call('GET', '/metrics')).text;
        const active = Number(/^forkd_sandboxes_active (\d+)/m.exec(m)?.[1] ?? NaN);
        maxActiveSeen = Math.max(maxActiveSeen, active);
        await sleep(50);
      }
    })();
    const { figures, responses } = await phase('spawn storm (POST /v1/sandboxes, n=1)', STORM, STORM, () =>
      call('POST', '/v1/sandboxes', { snapshot_tag: tag }),
    );
    storming = false;
    await watcher;
    phases.push(figures);
    t.diagnostic(JSON.stringify(figures));
    const made = responses.filter((r) => r.status === 201);
    assert.equal(made.length, MAX_SANDBOXES, JSON.stringify(figures.statuses));
    for (const r of responses) if (r.status !== 201) assertRefusal(r, 'busy');
    live = made.map((r) => (r.json as { sandboxes: { id: string; state: string }[] }).sandboxes[0]!.id);
    const list = ((await call('GET', '/v1/sandboxes')).json as { sandboxes: { state: string }[] }).sandboxes;
    assert.equal(list.filter((s) => s.state === 'running').length, MAX_SANDBOXES);
    assert.ok(maxActiveSeen <= MAX_SANDBOXES, `at most ${MAX_SANDBOXES} active at once, saw ${maxActiveSeen}`);
    proc.afterStorm = await processFigures(d.proc.pid!);
  });

  test('read traffic and guest calls on 10 live sandboxes are all answered', async (t) => {
    assert.equal(live.length, MAX_SANDBOXES);
    const reads = ['/v1/sandboxes', '/healthz', '/metrics'];
    const ten = live.slice(0, 10);
    await Promise.all(
      ten.map((id, i) => api(d.baseUrl, 'PUT', `/v1/sandboxes/${id}/files?path=/root/f`, { body: `file ${i}` })),
    );
    const runs = [
      await phase('GET /v1/sandboxes, /healthz, /metrics', 1500, 20, (i) => call('GET', reads[i % reads.length]!)),
      await phase('exec `true` on 10 sandboxes', 200, 10, (i) =>
        call('POST', `/v1/sandboxes/${ten[i % ten.length]!}/exec`, { args: ['true'] }),
      ),
      await phase('file read on 10 sandboxes', 200, 10, (i) =>
        call('GET', `/v1/sandboxes/${ten[i % ten.length]!}/files?path=/root/f`),
      ),
    ];
    for (const { figures, responses } of runs) {
      phases.push(figures);
      t.diagnostic(JSON.stringify(figures));
      assert.deepEqual(figures.statuses, { 200: figures.requests }, figures.name);
      if (figures.name.startsWith('exec'))
        for (const r of responses) assert.equal((r.json as { exit_code: number }).exit_code, 0);
      if (figures.name.startsWith('file'))
        for (const [i, r] of responses.entries()) assert.equal(r.text, `file ${i % ten.length}`);
    }
  });

  test(`${BRANCHES} concurrent BRANCHes against --branch-concurrency ${BRANCH_CAP}: ${BRANCH_CAP} made, the rest 503 with Retry-After`, async (t) => {
    const sources = live.slice(0, BRANCHES);
    const { figures, responses } = await phase('BRANCH (POST .../branch, wait)', BRANCHES, BRANCHES, (i) =>
      call('POST', `/v1/sandboxes/${sources[i]!}/branch`, { tag: `${tag}-b${i}` }),
    );
    phases.push(figures);
    t.diagnostic(JSON.stringify(figures));
    const made = responses.filter((r) => r.status === 201);
    assert.equal(made.length, BRANCH_CAP, JSON.stringify(figures.statuses));
    for (const r of responses) if (r.status !== 201) assertRefusal(r, 'busy');
    for (const r of made) {
      const b = r.json as { tag: string; status: string };
      assert.equal(b.status, 'ready');
      assert.equal((await call('DELETE', `/v1/snapshots/${b.tag}`)).status, 200);
    }
    const snaps = ((await call('GET', '/v1/snapshots')).json as { snapshots: { tag: string }[] }).snapshots;
    assert.deepEqual(
      snaps.map((s) => s.tag),
      [tag],
      'refused BRANCHes left no snapshot row',
    );
  });

  test('after it all, with the sandboxes gone, the daemon holds no more fds and little more memory', async () => {
    const { figures } = await phase('DELETE /v1/sandboxes/{id}', live.length, 10, (i) =>
      call('DELETE', `/v1/sandboxes/${live[i]!}`),
    );
    phases.push(figures);
    assert.deepEqual(figures.statuses, { 204: live.length });
    live = [];
    proc.end = await processFigures(d.proc.pid!);
    const start = proc.start!;
    const end = proc.end;
    assert.ok(end.fds <= start.fds + FD_SLACK, `fds ${start.fds} -> ${end.fds}`);
    assert.ok(end.rssMiB <= start.rssMiB + RSS_SLACK_MIB, `RSS ${start.rssMiB} -> ${end.rssMiB} MiB`);
  });
});
