// BRANCH benchmark (issue 5): source pause (QMP STOP -> RESUME event timestamps) and total
// time of both copies BRANCH knows (vmm/live-migrate.ts), for guests idle and dirtying memory
// at a fixed rate, side by side on the same sandbox: pre-copy (downtime-limit 20 ms; what KVM
// hosts use) and stop-and-copy (the guest paused for the whole save; what TCG hosts use, since
// pre-copy streams are not consistent under TCG).
import { randomBytes } from 'node:crypto';
import { link, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { materializeStream } from '../src/core/branch-materialize.js';
import type { CoreContext } from '../src/core/context.js';
import { percentileOf } from '../src/core/fork.js';
import { restoreChild, type Sandbox } from '../src/core/sandbox.js';
import { SNAPSHOT_FILES } from '../src/core/paths.js';
import { loadSnapshot } from '../src/core/snapshot-store.js';
import { branchCopyFor, liveMigrateToFile, type BranchCopy } from '../src/vmm/live-migrate.js';

export interface BranchRow {
  memMiB: number;
  load: 'idle' | 'dirtying';
  mode: BranchCopy;
  runs: number;
  pauseMs: number[];
  pauseP50Ms: number;
  pauseP90Ms: number;
  /** Source-visible part: the call until the source runs again. */
  liveP50Ms: number;
  /** Source-visible part + materialize into memory.bin + vmstate. */
  totalP50Ms: number;
  streamMiB: number;
}

export interface BranchBenchResult {
  dirtyRateMiBs: number;
  downtimeMs: number;
  rows: BranchRow[];
  notes: string[];
}

const MiB = 1024 * 1024;
/** The guest rewrites a 32 MiB file in its tmpfs once a second (busybox: the default image has no runtime). */
export const DIRTY_RATE_MIBS = 32;
const DIRTIER = `while :; do dd if=/dev/zero of=/tmp/dirty bs=1M count=${DIRTY_RATE_MIBS} 2>/dev/null; sleep 1; done`;

export async function branchBench(
  core: CoreContext,
  opts: { tags: { tag: string; memMiB: number }[]; runs: number; downtimeMs: number; log: (s: string) => void },
): Promise<BranchBenchResult> {
  const rows: BranchRow[] = [];
  const notes: string[] = [];
  for (const { tag, memMiB } of opts.tags) {
    const snap = await loadSnapshot(core, tag);
    for (const load of ['idle', 'dirtying'] as const) {
      const sb = await restoreChild(core, snap, { readyTimeoutMs: 120_000 });
      try {
        if (load === 'dirtying') {
          await sb.agent.exec({
            shell: `(setsid sh -c '${DIRTIER}' >/dev/null 2>&1 </dev/null &); echo ok`,
            timeoutMs: 30_000,
          });
          await sleep(2000);
        }
        for (const mode of ['pre-copy', 'stop-and-copy'] as const) {
          const pause: number[] = [];
          const liveMs: number[] = [];
          const totalMs: number[] = [];
          let streamBytes = 0;
          for (let i = 0; i < opts.runs; i++) {
            const r = await oneRun(
              core,
              sb,
              snap.dir,
              snap.meta,
              mode,
              opts.downtimeMs,
              i === 0 || mode === 'pre-copy',
            );
            pause.push(r.pauseMs);
            liveMs.push(r.liveMs);
            if (r.totalMs !== undefined) totalMs.push(r.totalMs);
            streamBytes = r.bytes;
            opts.log(
              `${memMiB} MiB ${load} ${mode} #${i + 1}: pause ${r.pauseMs.toFixed(1)} ms, live ${r.liveMs.toFixed(0)} ms${r.totalMs !== undefined ? `, total ${r.totalMs.toFixed(0)} ms` : ''}`,
            );
          }
          rows.push({
            memMiB,
            load,
            mode,
            runs: opts.runs,
            pauseMs: pause,
            pauseP50Ms: percentileOf(pause, 0.5),
            pauseP90Ms: percentileOf(pause, 0.9),
            liveP50Ms: percentileOf(liveMs, 0.5),
            totalP50Ms: totalMs.length ? percentileOf(totalMs, 0.5) : NaN,
            streamMiB: streamBytes / MiB,
          });
        }
        // The source must still be alive and answering after all of it.
        await sb.agent.ping({ timeoutMs: 30_000 });
      } finally {
        await sb.dispose();
      }
    }
  }
  notes.push(
    `On this host (${core.facts.accel.accel}) BRANCH uses ${branchCopyFor(core.facts.accel.accel)}.` +
      (core.facts.accel.accel === 'tcg'
        ? ' The pre-copy rows are measured for comparison only: under TCG its streams lose guest writes made between passes (children of a busy guest oopsed), so BRANCH does not use it here.'
        : ''),
  );
  return { dirtyRateMiBs: DIRTY_RATE_MIBS, downtimeMs: opts.downtimeMs, rows, notes };
}

async function oneRun(
  core: CoreContext,
  sb: Sandbox,
  snapDir: string,
  meta: Awaited<ReturnType<typeof loadSnapshot>>['meta'],
  mode: BranchCopy,
  downtimeMs: number,
  materialize: boolean,
): Promise<{ pauseMs: number; liveMs: number; totalMs?: number; bytes: number }> {
  const staging = core.paths.snapshotStagingDir('bench-branch', randomBytes(4).toString('hex'));
  await mkdir(staging, { mode: 0o755 });
  try {
    const streamPath = join(staging, 'branch.stream');
    const socketPath = join(core.paths.runDir(sb.id), `bench-${randomBytes(3).toString('hex')}.sock`);
    const owner = core.facts.vmUser ? { owner: core.facts.vmUser } : {};
    const t0 = performance.now();
    const r = await liveMigrateToFile(sb.vm.qmp, { socketPath, outPath: streamPath, downtimeMs, copy: mode, ...owner });
    const liveMs = performance.now() - t0;
    if (!materialize) return { pauseMs: r.pauseMs, liveMs, bytes: r.bytes };
    for (const f of Object.keys(meta.files))
      if (f !== SNAPSHOT_FILES.memory && f !== SNAPSHOT_FILES.vmstate) await link(join(snapDir, f), join(staging, f));
    await materializeStream(core, { streamPath, dir: staging, source: meta });
    return { pauseMs: r.pauseMs, liveMs, totalMs: performance.now() - t0, bytes: r.bytes };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

export function branchMarkdown(r: BranchBenchResult): string {
  const lines = [
    `- Pre-copy: live migration with \`downtime-limit\` ${r.downtimeMs} ms to a Unix-socket stream, then \`cont\` as soon as QEMU reports the migration complete (its MIGRATION event) and has left finish-migrate; then materialize (a paused QEMU loads the stream into a share=on memory.bin and saves device-only vmstate). Stop-and-copy: \`stop\`, the same migration while paused, \`cont\`. Both with \`max-bandwidth\` lifted (QEMU's default 128 MiB/s cap made a 192 MiB stream take 1.43 s).`,
    `- Pause = QMP STOP -> RESUME event timestamps of the source. "dirtying": a shell loop in the guest rewrites a ${r.dirtyRateMiBs} MiB file in its tmpfs once a second.`,
    "- Stop-and-copy rows materialize only their first run, so their total column is that one run; pre-copy rows materialize every run. The stream column is the last run's stream: a dirtying pre-copy stream exceeds the stop-and-copy one by the pages re-sent between passes. Total times include the sha256 of the new memory.bin and vary with the other engineers' QEMU load on the 2 shared cores.",
    '',
    '| guest RAM | load | mode | runs | pause p50 | pause p90 | source-visible call p50 | total incl. materialize p50 | stream |',
    '|---|---|---|---|---|---|---|---|---|',
    ...r.rows.map(
      (x) =>
        `| ${x.memMiB} MiB | ${x.load} | ${x.mode} | ${x.runs} | ${x.pauseP50Ms.toFixed(1)} ms | ${x.pauseP90Ms.toFixed(1)} ms | ${x.liveP50Ms.toFixed(0)} ms | ${Number.isNaN(x.totalP50Ms) ? '-' : `${x.totalP50Ms.toFixed(0)} ms`} | ${x.streamMiB.toFixed(0)} MiB |`,
    ),
    ...(r.notes.length ? ['', ...r.notes.map((n) => `- ${n}`)] : []),
  ];
  return lines.join('\n');
}
