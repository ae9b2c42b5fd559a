// Fork benchmark (issue 2): fork N = 1 / 10 / 50 children of one snapshot until every child
// answers, beside a cold boot of the same image in the same run.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreContext } from '../src/core/context.js';
import { coldBoot } from '../src/core/cold-boot.js';
import { disposeAll, forkChildren } from '../src/core/fork.js';
import { processPss } from '../src/host/memory.js';

export interface ForkRow {
  n: number;
  ready: number;
  wallMs: number;
  firstReadyMs: number;
  lastReadyMs: number;
  p50Ms: number;
  p90Ms: number;
  pssPerChildMiB: number;
  pssMaxMiB: number;
}

export interface ForkBenchResult {
  coldBootMs: number[];
  coldBootMedianMs: number;
  rows: ForkRow[];
  speedupN1: number;
}

const MiB = 1024 * 1024;

export async function forkBench(
  core: CoreContext,
  opts: { tag: string; image: string; memMiB: number; ns: number[]; coldBoots: number; log: (s: string) => void },
): Promise<ForkBenchResult> {
  const coldBootMs: number[] = [];
  for (let i = 0; i < opts.coldBoots; i++) {
    const r = await coldBoot(core, { image: opts.image, memMiB: opts.memMiB, vcpus: 1, bootTimeoutMs: 300_000 });
    coldBootMs.push(r.readyMs);
    opts.log(`cold boot ${i + 1}/${opts.coldBoots}: ${Math.round(r.readyMs)} ms`);
  }
  const rows: ForkRow[] = [];
  for (const n of opts.ns) {
    const res = await forkChildren(core, { tag: opts.tag, n, readyTimeoutMs: 120_000 });
    try {
      // Idle a moment so PSS reflects settled children, not the restore burst.
      await sleep(1000);
      const pss = (await Promise.all(res.children.map((c) => processPss(c.pid)))).filter(
        (x): x is number => x !== undefined,
      );
      rows.push({
        n,
        ready: res.children.length,
        wallMs: res.wallMs,
        firstReadyMs: res.firstReadyMs ?? NaN,
        lastReadyMs: res.lastReadyMs ?? NaN,
        p50Ms: res.readyP50Ms ?? NaN,
        p90Ms: res.readyP90Ms ?? NaN,
        pssPerChildMiB: pss.reduce((a, b) => a + b, 0) / Math.max(1, pss.length) / MiB,
        pssMaxMiB: Math.max(0, ...pss) / MiB,
      });
      opts.log(
        `fork n=${n}: ${res.children.length} ready, wall ${Math.round(res.wallMs)} ms, failures ${res.failures.length}${res.failures[0] ? ` (${res.failures[0].slice(0, 200)})` : ''}`,
      );
    } finally {
      await disposeAll(res.children);
    }
  }
  const sorted = [...coldBootMs].sort((a, b) => a - b);
  const coldBootMedianMs = sorted[Math.floor(sorted.length / 2)] ?? NaN;
  const n1 = rows.find((r) => r.n === 1);
  return { coldBootMs, coldBootMedianMs, rows, speedupN1: n1 ? coldBootMedianMs / n1.wallMs : NaN };
}

export function forkMarkdown(r: ForkBenchResult): string {
  const lines = [
    '| N | ready | wall until all answer | first ready | last ready | per-child p50 | per-child p90 | PSS / child (avg) | PSS max |',
    '|---|---|---|---|---|---|---|---|---|',
    ...r.rows.map(
      (x) =>
        `| ${x.n} | ${x.ready}/${x.n} | ${x.wallMs.toFixed(0)} ms | ${x.firstReadyMs.toFixed(0)} ms | ${x.lastReadyMs.toFixed(0)} ms | ${x.p50Ms.toFixed(0)} ms | ${x.p90Ms.toFixed(0)} ms | ${x.pssPerChildMiB.toFixed(1)} MiB | ${x.pssMaxMiB.toFixed(1)} MiB |`,
    ),
    '',
    `Cold boot of the same image until the agent answers (median of ${r.coldBootMs.length}): **${r.coldBootMedianMs.toFixed(0)} ms** (${r.coldBootMs.map((x) => x.toFixed(0)).join(', ')} ms).`,
    `Fork of one child vs cold boot: **${r.speedupN1.toFixed(1)}x** faster.`,
    '',
    targetsMarkdown(r),
  ];
  return lines.join('\n');
}

/** Issue 2's targets for this 2-core TCG machine, each with the measured value and a verdict. */
export function targetsMarkdown(r: ForkBenchResult): string {
  const n50 = r.rows.find((x) => x.n === 50);
  const pssIdle = n50?.pssPerChildMiB ?? NaN;
  const rows = [
    [
      '50 children answering',
      'at most 2 s wall',
      `${((n50?.wallMs ?? NaN) / 1000).toFixed(1)} s`,
      (n50?.wallMs ?? Infinity) <= 2000,
    ],
    ['PSS per idle child (N=50)', 'at most 20 MiB', `${pssIdle.toFixed(1)} MiB`, pssIdle <= 20],
    ['fork vs cold boot (N=1)', 'at least 50x', `${r.speedupN1.toFixed(1)}x`, r.speedupN1 >= 50],
  ] as const;
  return [
    '| target | wanted | measured | met |',
    '|---|---|---|---|',
    ...rows.map(([what, want, got, ok]) => `| ${what} | ${want} | ${got} | ${ok ? 'yes' : '**no**'} |`),
  ].join('\n');
}
