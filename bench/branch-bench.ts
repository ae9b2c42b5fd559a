// BRANCH benchmark (issue 5): source pause (QMP STOP -> RESUME event timestamps) and total
// time of a live BRANCH (pre-copy with downtime-limit 20 ms, then materialize), for guests
// idle and dirtying memory at a fixed rate, beside stop-and-copy (pause the guest for the
// whole save of its RAM) in the same run on the same sandbox.
import { randomBytes } from 'node:crypto';
import { link, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { materializeStream } from '../src/core/branch-materialize.js';
import type { CoreContext } from '../src/core/context.js';
import { restoreChild, type Sandbox } from '../src/core/sandbox.js';
import { SNAPSHOT_FILES } from '../src/core/paths.js';
import { loadSnapshot } from '../src/core/snapshot-store.js';
import { ensureRunning, liveMigrateToFile } from '../src/vmm/live-migrate.js';
import { openMigrationSink } from '../src/vmm/migration-sink.js';
import type { QmpClient, QmpEvent } from '../src/vmm/qmp.js';

export interface BranchRow {
  memMiB: number;
  load: 'idle' | 'dirtying';
  mode: 'live' | 'stop-and-copy';
  runs: number;
  pauseMs: number[];
  pauseP50Ms: number;
  pauseP90Ms: number;
  /** Source-visible part: the call until the source runs again. */
  liveP50Ms: number;
  /** Live part + materialize into memory.bin + vmstate (live mode only). */
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
/** The guest rewrites a 64 MiB buffer at this rate (a node loop, paced every 100 ms). */
export const DIRTY_RATE_MIBS = 32;
const DIRTIER = `const b=Buffer.alloc(64<<20);let o=0;setInterval(()=>{const n=${DIRTY_RATE_MIBS}*(1<<20)/10;for(let i=0;i<n;i+=4096){b[(o+i)%b.length]=(b[(o+i)%b.length]+1)&255}o=(o+n)%b.length},100);`;

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
            shell: `(setsid node -e '${DIRTIER}' >/dev/null 2>&1 </dev/null &); echo ok`,
            timeoutMs: 30_000,
          });
          await sleep(2000);
        }
        for (const mode of ['live', 'stop-and-copy'] as const) {
          const pause: number[] = [];
          const liveMs: number[] = [];
          const totalMs: number[] = [];
          let streamBytes = 0;
          for (let i = 0; i < opts.runs; i++) {
            const r = await oneRun(core, sb, snap.dir, snap.meta, mode, opts.downtimeMs, i === 0 || mode === 'live');
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
            pauseP50Ms: pct(pause, 0.5),
            pauseP90Ms: pct(pause, 0.9),
            liveP50Ms: pct(liveMs, 0.5),
            totalP50Ms: totalMs.length ? pct(totalMs, 0.5) : NaN,
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
  return { dirtyRateMiBs: DIRTY_RATE_MIBS, downtimeMs: opts.downtimeMs, rows, notes };
}

async function oneRun(
  core: CoreContext,
  sb: Sandbox,
  snapDir: string,
  meta: Awaited<ReturnType<typeof loadSnapshot>>['meta'],
  mode: 'live' | 'stop-and-copy',
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
    const r =
      mode === 'live'
        ? await liveMigrateToFile(sb.vm.qmp, { socketPath, outPath: streamPath, downtimeMs, ...owner })
        : await stopAndCopy(sb.vm.qmp, { socketPath, outPath: streamPath, ...owner });
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

/** The baseline: pause, save all RAM + devices to the stream, resume. */
async function stopAndCopy(
  qmp: QmpClient,
  opts: { socketPath: string; outPath: string; owner?: { uid: number; gid: number } },
): Promise<{ pauseMs: number; bytes: number }> {
  const events: QmpEvent[] = [];
  const on = (e: QmpEvent): void => void (e.event === 'STOP' || e.event === 'RESUME' ? events.push(e) : undefined);
  qmp.events.on('event', on);
  const sink = await openMigrationSink(opts);
  try {
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: false }] });
    await qmp.execute('stop');
    await qmp.execute('migrate', { uri: sink.uri });
    for (;;) {
      const info = await qmp.execute<{ status: string }>('query-migrate');
      if (info.status === 'completed') break;
      if (info.status === 'failed' || info.status === 'cancelled') throw new Error(`stop-and-copy ${info.status}`);
      await sleep(2);
    }
    await ensureRunning(qmp); // the same resume as BRANCH (waits out finish-migrate)
    const bytes = await sink.done;
    for (let i = 0; i < 1000 && !events.some((e) => e.event === 'RESUME'); i++) await sleep(2);
    const stop = events.find((e) => e.event === 'STOP');
    const resume = events.find((e) => e.event === 'RESUME');
    if (!stop || !resume) throw new Error('no STOP/RESUME events');
    return { pauseMs: (resume.timestampUs - stop.timestampUs) / 1000, bytes };
  } finally {
    qmp.events.off('event', on);
    await sink.close();
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
}

export function branchMarkdown(r: BranchBenchResult): string {
  const lines = [
    `- Live BRANCH: pre-copy with \`downtime-limit\` ${r.downtimeMs} ms to a Unix-socket stream, then \`cont\` as soon as QEMU reports the migration complete (its MIGRATION event) and has left finish-migrate; then materialize (a paused QEMU loads the stream into a share=on memory.bin and saves device-only vmstate). Stop-and-copy: \`stop\`, the same migration while paused, \`cont\`.`,
    `- Pause = QMP STOP -> RESUME event timestamps of the source. "dirtying": a node process in the guest rewrites a 64 MiB buffer at ${r.dirtyRateMiBs} MiB/s (one byte per 4 KiB page).`,
    "- Stop-and-copy rows materialize only their first run, so their total column is that one run; live rows materialize every run. The stream column is the last run's stream: a dirtying live stream exceeds the stop-and-copy one by the pages re-sent during pre-copy. Total times include the sha256 of the new memory.bin and vary with the other engineers' QEMU load on the 2 shared cores.",
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
