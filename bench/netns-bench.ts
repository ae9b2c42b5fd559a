// Isolation benchmark (issue 6): fork N children of one snapshot with no isolation, with a
// cgroup only, and with a cgroup + network namespace (egress allow), in the same run; plus the
// setup/teardown cost of isolation alone (no QEMU), the per-child price of a network.
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { CoreContext } from '../src/core/context.js';
import { disposeAll, defaultRestoreConcurrency, mapWithConcurrency, percentile } from '../src/core/fork.js';
import {
  prepareIsolation,
  validateIsolationOptions,
  type Isolation,
  type IsolationSpec,
} from '../src/core/isolation.js';
import { restoreChild, type Sandbox } from '../src/core/sandbox.js';
import { loadSnapshot } from '../src/core/snapshot-store.js';
import { removeHostNetwork } from '../src/host/bridge.js';
import { newSandboxId } from '../src/lib/ids.js';

export type Mode = 'none' | 'cgroup' | 'cgroup+netns';

const MODES: Record<Mode, IsolationSpec | undefined> = {
  none: undefined,
  cgroup: validateIsolationOptions({ memoryMiB: 1024 }, 'deny'),
  'cgroup+netns': validateIsolationOptions({ memoryMiB: 1024, network: { egress: 'allow' } }, 'deny'),
};

export interface NetnsForkRow {
  mode: Mode;
  n: number;
  ready: number;
  failures: string[];
  wallMs: number;
  firstReadyMs: number;
  lastReadyMs: number;
  p50Ms: number;
  p90Ms: number;
  /** Children whose guest pinged its gateway (10.42.0.1, the tap in its namespace). */
  gatewayOk: number | null;
  disposeWallMs: number;
}

export interface SetupRow {
  mode: Mode;
  n: number;
  prepareP50Ms: number;
  prepareP90Ms: number;
  disposeP50Ms: number;
  disposeP90Ms: number;
}

export interface NetnsBenchResult {
  concurrency: number;
  /** 1-minute load average when the run started: the cores may be shared with other work. */
  loadAvgStart: number;
  rows: NetnsForkRow[];
  setup: SetupRow[];
}

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);

async function forkRow(
  core: CoreContext,
  tag: string,
  mode: Mode,
  n: number,
  concurrency: number,
): Promise<NetnsForkRow> {
  const snap = await loadSnapshot(core, tag);
  const isolation = MODES[mode];
  const t0 = performance.now();
  const readyAt: number[] = [];
  const settled = await mapWithConcurrency(n, concurrency, async () => {
    const child = await restoreChild(core, snap, { readyTimeoutMs: 300_000, ...(isolation ? { isolation } : {}) });
    readyAt.push(performance.now() - t0);
    return child;
  });
  const wallMs = performance.now() - t0;
  const children = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failures = settled.flatMap((s) => (s.status === 'rejected' ? [String(s.reason).slice(0, 300)] : []));
  let gatewayOk: number | null = null;
  let disposeWallMs = NaN;
  try {
    if (mode === 'cgroup+netns') gatewayOk = await pingGateways(children);
  } finally {
    const d0 = performance.now();
    await disposeAll(children);
    disposeWallMs = performance.now() - d0;
  }
  const perChild = sorted(children.map((c) => c.timings.readyMs));
  const at = sorted(readyAt);
  return {
    mode,
    n,
    ready: children.length,
    failures,
    wallMs,
    firstReadyMs: at[0] ?? NaN,
    lastReadyMs: at[at.length - 1] ?? NaN,
    p50Ms: percentile(perChild, 0.5) ?? NaN,
    p90Ms: percentile(perChild, 0.9) ?? NaN,
    gatewayOk,
    disposeWallMs,
  };
}

async function pingGateways(children: Sandbox[]): Promise<number> {
  const results = await mapWithConcurrency(children.length, 4, async (i) => {
    const r = await children[i]!.agent.exec({ shell: 'ping -c 1 -W 10 10.42.0.1 >/dev/null', timeoutMs: 60_000 });
    return 'exitCode' in r && r.exitCode === 0;
  });
  return results.filter((r) => r.status === 'fulfilled' && r.value).length;
}

/** prepareIsolation + dispose without QEMU: what a namespace costs by itself. */
async function setupRow(core: CoreContext, mode: Mode, n: number, concurrency: number): Promise<SetupRow> {
  const opts = MODES[mode]!;
  const prepare: number[] = [];
  const dispose: number[] = [];
  const made = await mapWithConcurrency(n, concurrency, async () => {
    const t = performance.now();
    const iso = await prepareIsolation(core, newSandboxId(), opts);
    prepare.push(performance.now() - t);
    return iso;
  });
  const isolations = made.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = made.find((s) => s.status === 'rejected');
  await mapWithConcurrency(isolations.length, concurrency, async (i) => {
    const iso: Isolation = isolations[i]!;
    const t = performance.now();
    await iso.dispose();
    dispose.push(performance.now() - t);
  });
  if (failed) throw failed.reason;
  const p = sorted(prepare);
  const d = sorted(dispose);
  return {
    mode,
    n,
    prepareP50Ms: percentile(p, 0.5) ?? NaN,
    prepareP90Ms: percentile(p, 0.9) ?? NaN,
    disposeP50Ms: percentile(d, 0.5) ?? NaN,
    disposeP90Ms: percentile(d, 0.9) ?? NaN,
  };
}

export async function netnsBench(
  core: CoreContext,
  opts: { tag: string; n: number; log: (s: string) => void },
): Promise<NetnsBenchResult> {
  const concurrency = defaultRestoreConcurrency();
  const loadAvgStart = loadavg()[0] ?? NaN;
  const setup: SetupRow[] = [];
  const rows: NetnsForkRow[] = [];
  try {
    for (const mode of ['cgroup', 'cgroup+netns'] as const) {
      setup.push(await setupRow(core, mode, opts.n, concurrency));
      opts.log(`isolation only, ${mode}: prepare p50 ${setup.at(-1)!.prepareP50Ms.toFixed(0)} ms`);
    }
    // A-B-C-C-B-A: load from other work on shared cores drifts; the mirror order spreads it evenly.
    const order: Mode[] = ['none', 'cgroup', 'cgroup+netns', 'cgroup+netns', 'cgroup', 'none'];
    for (const mode of order) {
      const row = await forkRow(core, opts.tag, mode, opts.n, concurrency);
      rows.push(row);
      opts.log(
        `fork n=${opts.n} ${mode}: ${row.ready} ready, wall ${Math.round(row.wallMs)} ms, failures ${row.failures.length}${row.failures[0] ? ` (${row.failures[0]})` : ''}`,
      );
    }
  } finally {
    await removeHostNetwork().catch(() => undefined);
  }
  return { concurrency, loadAvgStart, rows, setup };
}

export function netnsMarkdown(r: NetnsBenchResult): string {
  const ms = (x: number): string => `${x.toFixed(0)} ms`;
  const meanWall = (mode: Mode): number | undefined => {
    const xs = r.rows.filter((x) => x.mode === mode).map((x) => x.wallMs);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
  };
  const none = meanWall('none');
  const cg = meanWall('cgroup');
  const net = meanWall('cgroup+netns');
  const n = r.rows[0]?.n ?? 0;
  const lines = [
    `Restores in flight at once: ${r.concurrency} (as \`forkd sandbox run\`). Load average when the run started: ${r.loadAvgStart.toFixed(1)} (the cores were shared with other work; compare the rows of one run, not runs).`,
    '',
    '| isolation | N | ready | wall until all answer | first ready | last ready | per-child p50 | per-child p90 | guest reached its gateway | dispose all |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...r.rows.map(
      (x) =>
        `| ${x.mode} | ${x.n} | ${x.ready}/${x.n} | ${ms(x.wallMs)} | ${ms(x.firstReadyMs)} | ${ms(x.lastReadyMs)} | ${ms(x.p50Ms)} | ${ms(x.p90Ms)} | ${x.gatewayOk === null ? '-' : `${x.gatewayOk}/${x.ready}`} | ${ms(x.disposeWallMs)} |`,
    ),
    '',
    ...(none !== undefined && cg !== undefined && net !== undefined
      ? [
          `Mean wall time of a fork of ${n} over the runs of each mode: none ${ms(none)}, cgroup ${ms(cg)}, cgroup+netns ${ms(net)}: a network namespace adds **${ms((net - cg) / n)} per child** over a cgroup alone, isolation as a whole **${ms((net - none) / n)} per child** over none.`,
          '',
        ]
      : []),
    'Isolation alone, without QEMU (same concurrency):',
    '',
    '| isolation | N | prepare p50 | prepare p90 | dispose p50 | dispose p90 |',
    '|---|---|---|---|---|---|',
    ...r.setup.map(
      (x) =>
        `| ${x.mode} | ${x.n} | ${ms(x.prepareP50Ms)} | ${ms(x.prepareP90Ms)} | ${ms(x.disposeP50Ms)} | ${ms(x.disposeP90Ms)} |`,
    ),
  ];
  return lines.join('\n');
}
