// One child with and without a parked VMM (core/parked-vmms.ts), side by side in one run:
// rounds alternate a plain restore (QEMU started on the critical path) and a restore of a
// parked QEMU (started before the clock starts, then left to settle). Wall until the agent
// answered `identity`, and the QEMU's CPU spent on the critical path (/proc/PID/stat: all of
// it for a plain child; for a parked one, what it spent after the spawn took it).
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { CoreContext } from '../src/core/context.js';
import { newSandboxId } from '../src/lib/ids.js';
import { percentileOf } from '../src/core/fork.js';
import { ParkedVmms } from '../src/core/parked-vmms.js';
import { restoreChild } from '../src/core/sandbox.js';
import { loadSnapshot } from '../src/core/snapshot-store.js';
import { processCpuMs } from '../src/host/proc-stat.js';

export interface ParkedSample {
  parked: boolean;
  readyMs: number;
  cpuMs: number;
}

export interface ParkedBenchResult {
  rounds: number;
  samples: ParkedSample[];
  plain: { readyP50Ms: number; readyP90Ms: number; cpuP50Ms: number };
  parked: { readyP50Ms: number; readyP90Ms: number; cpuP50Ms: number };
}

export async function parkedBench(
  core: CoreContext,
  opts: { tag: string; rounds: number; log: (s: string) => void },
): Promise<ParkedBenchResult> {
  const snap = await loadSnapshot(core, opts.tag);
  const pool = new ParkedVmms(core, { perSnapshot: 1, newId: () => newSandboxId() });
  const samples: ParkedSample[] = [];
  try {
    for (let round = 0; round < opts.rounds; round++) {
      for (const parked of round % 2 === 0 ? [false, true] : [true, false]) {
        let taken: ReturnType<ParkedVmms['take']>[number] | undefined;
        let cpuBefore = 0;
        if (parked) {
          pool.noteSpawn(snap);
          while ((pool.stats().parked[snap.tag] ?? 0) < 1) await sleep(50);
          await sleep(500); // let the parked QEMU settle: its start is not what is measured
          taken = pool.take(snap, 1)[0];
          if (!taken) throw new Error('no parked VMM to take');
          cpuBefore = (await processCpuMs(taken.started.vm.pid)) ?? 0;
        }
        const t0 = performance.now();
        const child = await restoreChild(core, snap, { readyTimeoutMs: 120_000, ...(taken ? { parked: taken } : {}) });
        const readyMs = performance.now() - t0;
        const cpuMs = ((await processCpuMs(child.pid)) ?? NaN) - cpuBefore;
        samples.push({ parked, readyMs, cpuMs });
        opts.log(`round ${round + 1}: ${parked ? 'parked' : 'plain '} ready ${readyMs.toFixed(0)} ms, CPU ${cpuMs} ms`);
        await child.dispose();
        await sleep(300);
      }
    }
  } finally {
    await pool.close();
  }
  const figures = (parked: boolean): ParkedBenchResult['plain'] => {
    const s = samples.filter((x) => x.parked === parked);
    return {
      readyP50Ms: percentileOf(
        s.map((x) => x.readyMs),
        0.5,
      ),
      readyP90Ms: percentileOf(
        s.map((x) => x.readyMs),
        0.9,
      ),
      cpuP50Ms: percentileOf(
        s.map((x) => x.cpuMs),
        0.5,
      ),
    };
  };
  return { rounds: opts.rounds, samples, plain: figures(false), parked: figures(true) };
}

export function parkedMarkdown(r: ParkedBenchResult): string {
  const row = (name: string, f: ParkedBenchResult['plain']): string =>
    `| ${name} | **${f.readyP50Ms.toFixed(0)} ms** | ${f.readyP90Ms.toFixed(0)} ms | ${f.cpuP50Ms.toFixed(0)} ms |`;
  return [
    `${r.rounds} rounds, each one plain restore and one parked restore (order alternating), one child at a time.`,
    '',
    '| child | ready p50 | ready p90 | QEMU CPU on the critical path (p50) |',
    '|---|---|---|---|',
    row('plain: QEMU started by the spawn', r.plain),
    row('parked: QEMU started ahead (`--parked-vmms`)', r.parked),
    '',
    `Parked saves ${(r.plain.readyP50Ms - r.parked.readyP50Ms).toFixed(0)} ms of wall time per child at p50 (${((1 - r.parked.readyP50Ms / r.plain.readyP50Ms) * 100).toFixed(0)}%). It does not make the guest's own readiness work (translating its wake-up paths under TCG) cheaper, so under load, when restores queue for the cores, the saving is this per child, not a multiple; a parked QEMU costs memory while it waits (its heap and TCG buffers).`,
  ].join('\n');
}
