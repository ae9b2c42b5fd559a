// Child tuning (issue 12, point 5): the same image snapshotted with and without the TCG guest
// kernel tuning (src/vmm/qemu-args.ts TCG_CHILD_TUNING), children restored one at a time: CPU
// and translated blocks (HMP `info jit`) when the agent answered identity and after the first
// exec, and PSS per idle child of 10. Other choices (THP off, no self-announce, a quiet agent)
// apply to both rows; their own measurements are in the results file's notes.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreContext } from '../src/core/context.js';
import { createSnapshot } from '../src/core/snapshot-create.js';
import { removeSnapshot } from '../src/core/snapshot-store.js';
import { disposeAll, forkChildren, percentileOf } from '../src/core/fork.js';
import type { Sandbox } from '../src/core/sandbox.js';
import { processPss } from '../src/host/memory.js';
import { processCpuMs } from '../src/host/proc-stat.js';

/** What children of one snapshot cost, restored one at a time (medians), and PSS of 10 idle. */
export interface ChildCost {
  runs: number;
  readyMs: number;
  cpuAtReadyMs: number;
  tbsAtReady: number;
  cpuFirstExecMs: number;
  tbsAfterFirstExec: number;
  tbFlushes: number;
  pssPerChildMiBN10: number;
}

export interface TuningRow extends ChildCost {
  variant: string;
}

async function jit(c: Sandbox): Promise<{ tbs: number; flushes: number }> {
  const text = await c.vm.qmp.execute<string>('human-monitor-command', { 'command-line': 'info jit' });
  return {
    tbs: Number(/TB count\s+(\d+)/.exec(text)?.[1] ?? NaN),
    flushes: Number(/TB flush count\s+(\d+)/.exec(text)?.[1] ?? NaN),
  };
}

const median = (xs: number[]): number => percentileOf(xs, 0.5);

export async function measureChildren(core: CoreContext, tag: string, runs: number): Promise<ChildCost> {
  const ready: number[] = [];
  const cpuReady: number[] = [];
  const tbReady: number[] = [];
  const cpuExec: number[] = [];
  const tbExec: number[] = [];
  let flushes = 0;
  for (let i = 0; i < runs; i++) {
    let cpuAt: Promise<number | undefined> = Promise.resolve(undefined);
    let jitAt: Promise<{ tbs: number; flushes: number }> | undefined;
    const r = await forkChildren(core, {
      tag,
      n: 1,
      onReady: (c) => {
        cpuAt = processCpuMs(c.pid);
        jitAt = jit(c);
      },
    });
    const c = r.children[0];
    if (!c) throw new Error(`fork failed: ${r.failures.join('; ')}`);
    try {
      const atReady = await jitAt!;
      const cpu0 = (await cpuAt) ?? NaN;
      await c.agent.exec({ argv: ['true'] });
      const cpu1 = (await processCpuMs(c.pid)) ?? NaN;
      const afterExec = await jit(c);
      ready.push(r.wallMs);
      cpuReady.push(cpu0);
      tbReady.push(atReady.tbs);
      cpuExec.push(cpu1 - cpu0);
      tbExec.push(afterExec.tbs);
      flushes = Math.max(flushes, afterExec.flushes);
    } finally {
      await disposeAll(r.children);
    }
  }
  const ten = await forkChildren(core, { tag, n: 10 });
  let pss = NaN;
  try {
    await sleep(1000);
    const all = (await Promise.all(ten.children.map((c) => processPss(c.pid)))).filter((x): x is number => !!x);
    pss = all.reduce((a, b) => a + b, 0) / Math.max(1, all.length) / 2 ** 20;
  } finally {
    await disposeAll(ten.children);
  }
  return {
    runs,
    readyMs: median(ready),
    cpuAtReadyMs: median(cpuReady),
    tbsAtReady: median(tbReady),
    cpuFirstExecMs: median(cpuExec),
    tbsAfterFirstExec: median(tbExec),
    tbFlushes: flushes,
    pssPerChildMiBN10: pss,
  };
}

export async function tuningBench(
  core: CoreContext,
  opts: { image: string; runs: number; log: (s: string) => void },
): Promise<TuningRow[]> {
  const rows: TuningRow[] = [];
  // Mirrored order (off, on, on, off) so a drift in machine load shows rather than biases.
  const order: boolean[] = [false, true, true, false];
  for (const [i, tuned] of order.entries()) {
    const tag = `bench-tune-${tuned ? 'on' : 'off'}-${i}-${Date.now().toString(36)}`;
    await createSnapshot(core, {
      tag,
      image: opts.image,
      memMiB: 512,
      vcpus: 1,
      warmup: [],
      bootTimeoutMs: 300_000,
      kernelTuning: tuned,
    });
    try {
      const row = { variant: tuned ? 'tuned' : 'untuned', ...(await measureChildren(core, tag, opts.runs)) };
      opts.log(`${row.variant}: cpu at ready ${row.cpuAtReadyMs} ms, ${row.tbsAtReady} TBs`);
      rows.push(row);
    } finally {
      await removeSnapshot(core.paths, tag).catch(() => undefined);
    }
  }
  return rows;
}

export function tuningMarkdown(rows: TuningRow[]): string {
  return [
    '| variant | runs | ready (N=1) | CPU at ready | TBs at ready | CPU of the first exec | TBs after it | TB flushes | PSS / idle child (N=10) |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.variant} | ${r.runs} | ${r.readyMs.toFixed(0)} ms | ${r.cpuAtReadyMs.toFixed(0)} ms | ${r.tbsAtReady} | ${r.cpuFirstExecMs.toFixed(0)} ms | ${r.tbsAfterFirstExec} | ${r.tbFlushes} | ${r.pssPerChildMiBN10.toFixed(1)} MiB |`,
    ),
  ].join('\n');
}
