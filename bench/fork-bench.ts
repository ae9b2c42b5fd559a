// Fork benchmark (issues 2 and 12), all in one run: fork N = 1 / 10 / 50 children of one
// snapshot until every child answers (wall, CPU per child until it answered, PSS per idle
// child), exec `true` round trips in a just-forked and in a warm child, the quickstart's
// fork-10-and-exec step, Python eval in fresh children (first and second eval), and a cold
// boot of the same image.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreContext } from '../src/core/context.js';
import { coldBoot } from '../src/core/cold-boot.js';
import { defaultRestoreConcurrency, disposeAll, forkChildren, percentile } from '../src/core/fork.js';
import { ParkedVmms, type ParkedVmm } from '../src/core/parked-vmms.js';
import { loadSnapshot } from '../src/core/snapshot-store.js';
import { newSandboxId } from '../src/lib/ids.js';
import type { Sandbox } from '../src/core/sandbox.js';
import { processPss } from '../src/host/memory.js';
import { processCpuMs } from '../src/host/proc-stat.js';
import { QUICKSTART_EXEC } from '../src/cli/commands/quickstart.js';

export interface ForkRow {
  n: number;
  ready: number;
  wallMs: number;
  firstReadyMs: number;
  lastReadyMs: number;
  p50Ms: number;
  p90Ms: number;
  /**
   * QEMU CPU (user + system) per child spent on the spawn's critical path, until it answered
   * identity (/proc/PID/stat, 10 ms resolution): all of it for a plain child, what it spent
   * after the spawn took it for a parked one.
   */
  cpuPerChildMs: number;
  cpuMaxMs: number;
  /** All the QEMU's CPU until it answered, its parked start included. */
  cpuTotalPerChildMs: number;
  pssPerChildMiB: number;
  pssMaxMiB: number;
  /** When the row is the median of repeated runs: every run's wall time, in run order. */
  wallRunsMs?: number[];
}

/** N=50 with a given number of restores in flight (the median of its runs). */
export type WindowRow = ForkRow & { window: number };

export interface ExecRow {
  /** The first `true` in a just-forked child. */
  firstMs: number[];
  /** Later round trips in the same (now warm) child. */
  warmP50Ms: number;
  warmP90Ms: number;
  warmRuns: number;
}

export interface EvalRow {
  children: number;
  firstP50Ms: number;
  firstP90Ms: number;
  secondP50Ms: number;
  secondP90Ms: number;
}

export interface ForkBenchResult {
  image: string;
  coldBootMs: number[];
  coldBootMedianMs: number;
  rows: ForkRow[];
  /** The same forks into parked VMMs (QEMU started ahead). */
  parkedRows: ForkRow[];
  /** The restore window this machine's default uses, and N=50 under other windows. */
  defaultWindow: number;
  windowRows: WindowRow[];
  speedupN1: number;
  speedupN1Parked: number;
  exec: ExecRow;
  quickstart: QuickstartRun;
  quickstartBefore: QuickstartRun;
  pythonEval?: EvalRow & { image: string; code: string };
}

const MiB = 1024 * 1024;
/** The command the quickstart ran until 2026-12-02: five processes and two subshells per child. */
export const QUICKSTART_EXEC_BEFORE =
  'echo "hello from $(hostname): $(head -c 6 /dev/urandom | od -An -tx1 | tr -d " ")"';

export interface QuickstartRun {
  n: number;
  wallMs: number;
  forkMs: number;
  execMs: number;
  command: string;
}

/** Fork 10 and run `command` in each, until every child's command has ended. */
async function quickstartStep(core: CoreContext, tag: string, command: string): Promise<QuickstartRun> {
  const start = performance.now();
  const qs = await forkChildren(core, { tag, n: 10, readyTimeoutMs: 120_000 });
  const forked = performance.now();
  try {
    await Promise.all(
      qs.children.map(async (c) => {
        const r = await c.agent.exec({ shell: command });
        if (r.exitCode !== 0) throw new Error(`quickstart command failed: ${r.stderr.toString()}`);
      }),
    );
  } finally {
    await disposeAll(qs.children);
  }
  const end = performance.now();
  return { n: 10, wallMs: end - start, forkMs: forked - start, execMs: end - forked, command };
}

function p(sorted: number[], q: number): number {
  return percentile(sorted, q) ?? NaN;
}

async function trueRoundTrip(child: Sandbox): Promise<number> {
  const t = performance.now();
  const r = await child.agent.exec({ argv: ['true'] });
  if (r.exitCode !== 0) throw new Error(`true exited ${String(r.exitCode)}: ${r.stderr.toString()}`);
  return performance.now() - t;
}

/** Fork `n` children once (QEMU started per child, or restored into `n` parked VMMs) and measure. */
async function measureFork(
  core: CoreContext,
  o: { tag: string; n: number; parked?: boolean; concurrency?: number; log: (s: string) => void },
): Promise<ForkRow> {
  let pool: ParkedVmms | undefined;
  let parked: ParkedVmm[] = [];
  const cpuAtTake = new Map<number, number>();
  try {
    if (o.parked) {
      const snap = await loadSnapshot(core, o.tag);
      pool = new ParkedVmms(core, { perSnapshot: o.n, newId: () => newSandboxId() });
      pool.noteSpawn(snap);
      while ((pool.stats().parked[snap.tag] ?? 0) < o.n) await sleep(50);
      await sleep(1000); // let the parked QEMUs settle: their start is not what this row measures
      parked = pool.take(snap, o.n);
      for (const v of parked) cpuAtTake.set(v.started.vm.pid, (await processCpuMs(v.started.vm.pid)) ?? 0);
    }
    const cpu: number[] = [];
    const cpuTotal: number[] = [];
    const res = await forkChildren(core, {
      tag: o.tag,
      n: o.n,
      readyTimeoutMs: 120_000,
      ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
      ...(o.parked ? { parked } : {}),
      onReady: (child) =>
        void processCpuMs(child.pid).then((ms) => {
          if (ms === undefined) return;
          cpuTotal.push(ms);
          cpu.push(ms - (cpuAtTake.get(child.pid) ?? 0));
        }),
    });
    try {
      // Idle a moment so PSS reflects settled children, not the restore burst.
      await sleep(1000);
      const pss = (await Promise.all(res.children.map((c) => processPss(c.pid)))).filter(
        (x): x is number => x !== undefined,
      );
      const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
      o.log(
        `fork n=${o.n}${o.parked ? ' (parked)' : ''}${o.concurrency ? ` window ${o.concurrency}` : ''}: ${res.children.length} ready, wall ${Math.round(res.wallMs)} ms, failures ${res.failures.length}${res.failures[0] ? ` (${res.failures[0].slice(0, 200)})` : ''}`,
      );
      return {
        n: o.n,
        ready: res.children.length,
        wallMs: res.wallMs,
        firstReadyMs: res.firstReadyMs ?? NaN,
        lastReadyMs: res.lastReadyMs ?? NaN,
        p50Ms: res.readyP50Ms ?? NaN,
        p90Ms: res.readyP90Ms ?? NaN,
        cpuPerChildMs: avg(cpu),
        cpuMaxMs: Math.max(0, ...cpu),
        cpuTotalPerChildMs: avg(cpuTotal),
        pssPerChildMiB: avg(pss) / MiB,
        pssMaxMiB: Math.max(0, ...pss) / MiB,
      };
    } finally {
      await disposeAll(res.children);
    }
  } finally {
    await pool?.close();
  }
}

export async function forkBench(
  core: CoreContext,
  opts: {
    tag: string;
    image: string;
    memMiB: number;
    ns: number[];
    coldBoots: number;
    /** Restore windows to compare at N=50. */
    windows: number[];
    log: (s: string) => void;
    python?: { tag: string; image: string };
  },
): Promise<ForkBenchResult> {
  const rows: ForkRow[] = [];
  // N=1 and N=50 are repeated (N=1's single sample varies most; N=50 is the headline, and this
  // shared 2-core machine's speed drifts by tens of percent within minutes); the run with the
  // median wall time is reported, every run's wall time beside it.
  const plan = opts.ns.flatMap((n) => Array<number>(n === 1 ? 5 : n === 50 ? 3 : 1).fill(n));
  for (const n of plan) rows.push(await measureFork(core, { tag: opts.tag, n, log: opts.log }));

  // The same forks with every child's QEMU parked ahead (--parked-vmms): labelled, never mixed in.
  const parkedRows: ForkRow[] = [];
  for (const n of plan) parkedRows.push(await measureFork(core, { tag: opts.tag, n, parked: true, log: opts.log }));

  // How many restores in flight (RestoreWindow): N=50 with each window, QEMU started per child,
  // 3 rounds in alternating order so drift does not favour one window; medians reported.
  const byWindow = new Map<number, ForkRow[]>(opts.windows.map((w) => [w, []]));
  for (let round = 0; round < 3; round++) {
    for (const window of round % 2 === 0 ? opts.windows : [...opts.windows].reverse())
      byWindow.get(window)?.push(await measureFork(core, { tag: opts.tag, n: 50, concurrency: window, log: opts.log }));
  }
  const windowRows: WindowRow[] = [...byWindow].map(([window, runs]) => ({ window, ...medianByWall(runs) }));

  // exec `true`: the first in each of 5 just-forked children, then 30 more in one of them.
  const execChildren = await forkChildren(core, { tag: opts.tag, n: 5, readyTimeoutMs: 120_000 });
  let exec: ExecRow;
  try {
    const firstMs: number[] = [];
    for (const c of execChildren.children) firstMs.push(await trueRoundTrip(c));
    const warm: number[] = [];
    const c = execChildren.children[0];
    if (!c) throw new Error(`fork for exec failed: ${execChildren.failures.join('; ')}`);
    for (let i = 0; i < 30; i++) warm.push(await trueRoundTrip(c));
    warm.sort((a, b) => a - b);
    exec = { firstMs, warmP50Ms: p(warm, 0.5), warmP90Ms: p(warm, 0.9), warmRuns: warm.length };
    opts.log(
      `exec true: first ${firstMs.map((x) => x.toFixed(0)).join(', ')} ms, warm p50 ${exec.warmP50Ms.toFixed(1)} ms`,
    );
  } finally {
    await disposeAll(execChildren.children);
  }

  // The quickstart's step 3 (fork 10 and run its command in each, as `forkd sandbox run --exec`
  // does), with today's command and the one it replaced, alternating, 3 times each (median).
  const qsRuns: { [k in 'now' | 'before']: QuickstartRun[] } = { now: [], before: [] };
  for (let i = 0; i < 3; i++) {
    for (const which of i % 2 === 0 ? (['now', 'before'] as const) : (['before', 'now'] as const)) {
      const run = await quickstartStep(core, opts.tag, which === 'now' ? QUICKSTART_EXEC : QUICKSTART_EXEC_BEFORE);
      qsRuns[which].push(run);
      opts.log(`quickstart step (${which}): ${run.wallMs.toFixed(0)} ms`);
    }
  }
  const quickstart = medianByWallMs(qsRuns.now);
  const quickstartBefore = medianByWallMs(qsRuns.before);

  let pythonEval: ForkBenchResult['pythonEval'];
  if (opts.python) {
    const code = 'numpy.zeros(5).tolist()';
    const kids = await forkChildren(core, { tag: opts.python.tag, n: 10, readyTimeoutMs: 120_000 });
    try {
      const first: number[] = [];
      const second: number[] = [];
      for (const c of kids.children) {
        for (const into of [first, second]) {
          const t = performance.now();
          const r = await c.agent.eval({ code, language: 'python' });
          into.push(performance.now() - t);
          if (JSON.stringify(r.value) !== '[0,0,0,0,0]') throw new Error(`eval gave ${JSON.stringify(r)}`);
        }
      }
      first.sort((a, b) => a - b);
      second.sort((a, b) => a - b);
      pythonEval = {
        image: opts.python.image,
        code,
        children: kids.children.length,
        firstP50Ms: p(first, 0.5),
        firstP90Ms: p(first, 0.9),
        secondP50Ms: p(second, 0.5),
        secondP90Ms: p(second, 0.9),
      };
      opts.log(
        `python eval: first p50 ${pythonEval.firstP50Ms.toFixed(0)} ms, second ${pythonEval.secondP50Ms.toFixed(0)} ms`,
      );
    } finally {
      await disposeAll(kids.children);
    }
  }

  const coldBootMs: number[] = [];
  for (let i = 0; i < opts.coldBoots; i++) {
    const r = await coldBoot(core, { image: opts.image, memMiB: opts.memMiB, vcpus: 1, bootTimeoutMs: 300_000 });
    coldBootMs.push(r.readyMs);
    opts.log(`cold boot ${i + 1}/${opts.coldBoots}: ${Math.round(r.readyMs)} ms`);
  }
  const sorted = [...coldBootMs].sort((a, b) => a - b);
  const coldBootMedianMs = sorted[Math.floor(sorted.length / 2)] ?? NaN;
  const plainRows = medianPerN(rows);
  const parkedMedians = medianPerN(parkedRows);
  const n1 = plainRows.find((r) => r.n === 1);
  const n1Parked = parkedMedians.find((r) => r.n === 1);
  return {
    image: opts.image,
    coldBootMs,
    coldBootMedianMs,
    rows: plainRows,
    parkedRows: parkedMedians,
    defaultWindow: defaultRestoreConcurrency(),
    windowRows,
    speedupN1: n1 ? coldBootMedianMs / n1.wallMs : NaN,
    speedupN1Parked: n1Parked ? coldBootMedianMs / n1Parked.wallMs : NaN,
    exec,
    quickstart,
    quickstartBefore,
    ...(pythonEval ? { pythonEval } : {}),
  };
}

/** " (runs: a, b, c ms)" after a median of repeated runs. */
function runsNote(runs: number[] | undefined): string {
  return runs && runs.length > 1 ? ` (runs: ${runs.map((x) => x.toFixed(0)).join(', ')})` : '';
}

function forkRowsTable(rows: ForkRow[], parked = false): string[] {
  return [
    '| N | ready | wall until all answer (N=1: median of 5, N=50: of 3) | first ready | last ready | per-child p50 | per-child p90 | CPU / child until it answered (avg, max) | PSS / idle child (avg, max) |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (x) =>
        `| ${x.n} | ${x.ready}/${x.n} | **${x.wallMs.toFixed(0)} ms**${runsNote(x.wallRunsMs)} | ${x.firstReadyMs.toFixed(0)} ms | ${x.lastReadyMs.toFixed(0)} ms | ${x.p50Ms.toFixed(0)} ms | ${x.p90Ms.toFixed(0)} ms | ${x.cpuPerChildMs.toFixed(0)} ms, ${x.cpuMaxMs.toFixed(0)} ms${parked ? ` (${x.cpuTotalPerChildMs.toFixed(0)} ms)` : ''} | ${x.pssPerChildMiB.toFixed(1)} MiB, ${x.pssMaxMiB.toFixed(1)} MiB |`,
    ),
  ];
}

/** Of repeated runs (an odd number), the one with the median wall time. */
function medianByWallMs<T extends { wallMs: number }>(runs: readonly T[]): T {
  const median = [...runs].sort((a, b) => a.wallMs - b.wallMs)[Math.floor(runs.length / 2)];
  if (!median) throw new Error('no run to take the median of');
  return median;
}

/** The median fork run, carrying every run's wall time. */
function medianByWall(runs: ForkRow[]): ForkRow {
  return { ...medianByWallMs(runs), wallRunsMs: runs.map((r) => r.wallMs) };
}

/** One row per N: the median run of those repeated. */
function medianPerN(rows: ForkRow[]): ForkRow[] {
  const ns = [...new Set(rows.map((r) => r.n))];
  return ns.map((n) => medianByWall(rows.filter((r) => r.n === n)));
}

/** The whole of bench/results/fork.md. */
export function forkReport(
  machineMd: string,
  r: ForkBenchResult,
  previous?: PreviousForkRun,
  last?: PreviousForkRun,
): string {
  return `# Fork vs cold boot\n\n${machineMd}\n- Image: default (busybox + the native agent, no Node), 512 MiB guest RAM, 1 vCPU; Python rows: image numpy (Debian python3-numpy), numpy pre-imported in the warm worker.\n- "Answers" = the child's agent replied to \`identity\` (hostname, entropy, clock set): the readiness point. The first table and every figure not marked "parked" used no pre-spawned VMMs: every child's QEMU started on the critical path.\n- CPU per child: the QEMU process's user + system time (/proc/PID/stat) when its agent answered.\n\n![wall time against N](fork.svg)\n\n${forkMarkdown(r, previous, last)}\n`;
}

/** The figures of an earlier run, as its fork.json holds them. */
export interface PreviousForkRun {
  date: string;
  rows: { n: number; wallMs: number; pssPerChildMiB: number }[];
  speedupN1: number;
}

export function forkMarkdown(r: ForkBenchResult, previous?: PreviousForkRun, last?: PreviousForkRun): string {
  const prev = (n: number) => previous?.rows.find((x) => x.n === n);
  const lines = [
    'Every QEMU started by the spawn (the default: `--parked-vmms 0`):',
    '',
    ...forkRowsTable(r.rows),
    '',
    `The same forks restored into N parked VMMs (\`--parked-vmms N\`: each child's QEMU started ahead and left to settle; CPU is what each spent after the spawn took it, its total including the parked start in brackets):`,
    '',
    ...forkRowsTable(r.parkedRows, true),
    '',
    `Restores in flight at once (N=50, QEMU started per child; this machine's default window is ${r.defaultWindow}, one per core, at least 2; until 2026-12-02 it was twice the cores, 4 here):`,
    '',
    '| window | ready | wall until all answer (median of 3) | per-child p50 | CPU / child |',
    '|---|---|---|---|---|',
    ...r.windowRows.map(
      (w) =>
        `| ${w.window}${w.window === r.defaultWindow ? ' (default)' : ''} | ${w.ready}/50 | **${w.wallMs.toFixed(0)} ms**${runsNote(w.wallRunsMs)} | ${w.p50Ms.toFixed(0)} ms | ${w.cpuPerChildMs.toFixed(0)} ms |`,
    ),
    '',
    `- exec \`true\` round trip: first exec in each of ${r.exec.firstMs.length} just-forked children ${r.exec.firstMs.map((x) => x.toFixed(0)).join(', ')} ms; in a warm child p50 **${r.exec.warmP50Ms.toFixed(1)} ms**, p90 ${r.exec.warmP90Ms.toFixed(1)} ms (${r.exec.warmRuns} runs).`,
    `- The quickstart's step (fork ${r.quickstart.n}, then \`${r.quickstart.command}\` in each; median of 3): **${r.quickstart.wallMs.toFixed(0)} ms** (fork ${r.quickstart.forkMs.toFixed(0)} ms + exec ${r.quickstart.execMs.toFixed(0)} ms). With the command it replaced, \`${r.quickstartBefore.command}\` (5 processes and 2 subshells per child), in the same run: ${r.quickstartBefore.wallMs.toFixed(0)} ms (fork ${r.quickstartBefore.forkMs.toFixed(0)} ms + exec ${r.quickstartBefore.execMs.toFixed(0)} ms).`,
    ...(r.pythonEval
      ? [
          `- Python eval \`${r.pythonEval.code}\` in ${r.pythonEval.children} fresh children of a warm \`${r.pythonEval.image}\` snapshot: first eval p50 ${r.pythonEval.firstP50Ms.toFixed(0)} ms (p90 ${r.pythonEval.firstP90Ms.toFixed(0)} ms), second eval p50 ${r.pythonEval.secondP50Ms.toFixed(0)} ms (p90 ${r.pythonEval.secondP90Ms.toFixed(0)} ms).`,
        ]
      : []),
    `- Cold boot of the same image until the agent answers (median of ${r.coldBootMs.length}): **${r.coldBootMedianMs.toFixed(0)} ms** (${r.coldBootMs.map((x) => x.toFixed(0)).join(', ')} ms). Fork of one child vs cold boot: **${r.speedupN1.toFixed(1)}x** faster (into a parked VMM: ${r.speedupN1Parked.toFixed(1)}x).`,
    '',
    ...(previous
      ? [
          `Previous figures beside these: the Node.js agent in the default image (${previous.date})${last ? `, and this bench's last run (${last.date})` : ''}:`,
          '',
          `| N | wall, Node agent | ${last ? 'wall, last run | ' : ''}wall now | PSS / child, Node agent | ${last ? 'PSS / child, last run | ' : ''}PSS / child now |`,
          `|---|---|---|${last ? '---|---|' : ''}---|---|`,
          ...r.rows.map((x) => {
            const l = last?.rows.find((y) => y.n === x.n);
            const lastWall = last ? `${l?.wallMs.toFixed(0) ?? '-'} ms | ` : '';
            const lastPss = last ? `${l?.pssPerChildMiB.toFixed(1) ?? '-'} MiB | ` : '';
            return `| ${x.n} | ${prev(x.n)?.wallMs.toFixed(0) ?? '-'} ms | ${lastWall}${x.wallMs.toFixed(0)} ms | ${prev(x.n)?.pssPerChildMiB.toFixed(1) ?? '-'} MiB | ${lastPss}${x.pssPerChildMiB.toFixed(1)} MiB |`;
          }),
          `| fork vs cold boot | ${previous.speedupN1.toFixed(1)}x | ${last ? `${last.speedupN1.toFixed(1)}x | ` : ''}${r.speedupN1.toFixed(1)}x | | ${last ? '| ' : ''}|`,
          '',
        ]
      : []),
    targetsMarkdown(r),
    '',
    whyMarkdown(r),
  ];
  return lines.join('\n');
}

/** Why the missed targets are missed, from this run's own figures (and child-tuning.md's profile). */
export function whyMarkdown(r: ForkBenchResult): string {
  const n50 = r.rows.find((x) => x.n === 50);
  const p50 = r.parkedRows.find((x) => x.n === 50);
  const cores = 2;
  const floorS = n50 ? (50 * n50.cpuPerChildMs) / cores / 1000 : NaN;
  const parkedFloorS = p50 ? (50 * p50.cpuPerChildMs) / cores / 1000 : NaN;
  return [
    'Why the missed targets are missed (measured):',
    `- Readiness is CPU-bound: a child spends ${(n50?.cpuPerChildMs ?? NaN).toFixed(0)} ms of CPU until it answers at N=50 (QEMU's own start`,
    '  and the restore ~20-30 ms, then the guest kernel translating ~5,500 blocks before the identity reply:',
    '  scheduler, timer, RCU, virtio-serial and syscall paths that every child runs for the first time; see',
    "  child-tuning.md). The native agent's own code is a few hundred of those blocks. 50 children x that CPU on",
    `  ${cores} cores is ${floorS.toFixed(1)} s at best; with parked VMMs ${(p50?.cpuPerChildMs ?? NaN).toFixed(0)} ms each is left on the critical path, ${parkedFloorS.toFixed(1)} s`,
    '  at best, and the rest of the wall time is the host side (QMP and agent I/O of this one process) and the',
    "  timers of the children already idle, on the same 2 cores. This machine's speed also drifts: the same",
    '  single restore measured 70 and 120 ms of CPU ten minutes apart (child-tuning.md), hence the repeated runs.',
    "- The first exec in a child translates the kernel's fork/exec/mm paths and busybox (~11,700 more blocks,",
    "  100-160 ms of CPU); later ones are cheap (the warm round trip above). The quickstart's command now uses",
    '  shell builtins only (one process per child instead of five), measured beside the old one above.',
    '- PSS per idle child, one child of 10 read from /proc/PID/smaps (2026-12-02): QEMU heap 5.0 MiB; TCG code',
    "  buffer 3.8 MiB touched of 16; QEMU's and libcapstone's relocated data 3.5 MiB (written by the dynamic",
    '  loader in every process: QEMU links the disassembler, a QEMU build without it is not in Debian); guest',
    "  pages the child wrote 0.6 MiB; its share of memory.bin's page cache and of QEMU's text. glibc's",
    '  MALLOC_ARENA_MAX=1 and fixed trim/mmap thresholds moved the average by under 0.2 MiB (noise): not adopted.',
    `- Fork vs cold boot: the cold boot of this run is ${r.coldBootMedianMs.toFixed(0)} ms because the machine now has an RTC: without one the guest`,
    '  kernel waited out ~2.5 s of RTC timeouts in every boot (boot.md), and the last runs before it measured 5.8-6.3 s',
    '  and 50-58x. The ratio fell because the baseline stopped wasting time, not because a fork got slower.',
    "- Not tried: a guest kernel built for this (this one is Debian's cloud kernel; fewer config options would",
    '  mean fewer hooks on the paths above, but building one adds minutes to every fresh host and CI run).',
  ].join('\n');
}

/** Issue 12's targets for this 2-core TCG machine, each with the measured value and a verdict, plain and parked. */
export function targetsMarkdown(r: ForkBenchResult): string {
  const at = (rows: ForkRow[], n: number) => rows.find((x) => x.n === n);
  const ms = (v: number | undefined) => `${(v ?? NaN).toFixed(0)} ms`;
  const verdict = (value: number, limit: number, atLeast = false): string => {
    if (Number.isNaN(value)) return '-';
    if (atLeast) return value >= limit ? 'yes' : `**no** (${((1 - value / limit) * 100).toFixed(1)}% short)`;
    return value <= limit ? 'yes' : `**no** (${((value / limit - 1) * 100).toFixed(0)}% over)`;
  };
  type Row = [what: string, want: string, limit: number, plain: number, parked: number, fmt: (v: number) => string];
  /** A figure of the N-children row, plain and parked. */
  const both = (n: number, key: 'wallMs' | 'cpuPerChildMs' | 'pssPerChildMiB'): [number, number] => [
    at(r.rows, n)?.[key] ?? NaN,
    at(r.parkedRows, n)?.[key] ?? NaN,
  ];
  const rows: Row[] = [
    ['50 children answering', 'at most 2 s wall', 2000, ...both(50, 'wallMs'), ms],
    ['one child answering', 'at most 100 ms', 100, ...both(1, 'wallMs'), ms],
    [
      'CPU per child until it answers (N=50 avg; parked: on the critical path)',
      'at most 80 ms',
      80,
      ...both(50, 'cpuPerChildMs'),
      ms,
    ],
    [
      'exec `true` round trip in a warm child (p50)',
      'at most 30 ms',
      30,
      r.exec.warmP50Ms,
      NaN,
      (v) => `${v.toFixed(1)} ms`,
    ],
    ['quickstart fork-10-and-exec', 'at most 2 s', 2000, r.quickstart.wallMs, NaN, ms],
    ['PSS per idle child (N=50)', 'at most 16 MiB', 16, ...both(50, 'pssPerChildMiB'), (v) => `${v.toFixed(1)} MiB`],
  ];
  const cell = (v: number, limit: number, fmt: (v: number) => string, atLeast = false): string =>
    Number.isNaN(v) ? '-' : `${fmt(v)}: ${verdict(v, limit, atLeast)}`;
  return [
    '| target | wanted | measured (QEMU started per child) | measured (parked VMMs) |',
    '|---|---|---|---|',
    ...rows.map(
      ([what, want, limit, plain, parked, fmt]) =>
        `| ${what} | ${want} | ${cell(plain, limit, fmt)} | ${cell(parked, limit, fmt)} |`,
    ),
    `| fork vs cold boot (N=1) | at least 50x | ${cell(r.speedupN1, 50, (v) => `${v.toFixed(1)}x`, true)} | ${cell(r.speedupN1Parked, 50, (v) => `${v.toFixed(1)}x`, true)} |`,
  ].join('\n');
}

/** A small SVG chart: wall time until all children answer against N, now and before. */
export function forkChartSvg(r: ForkBenchResult, previous?: { rows: { n: number; wallMs: number }[] }): string {
  const W = 560;
  const H = 320;
  const pad = { l: 60, r: 20, t: 30, b: 45 };
  const series = [
    { name: 'native agent (now)', color: '#1f77b4', pts: r.rows.map((x) => [x.n, x.wallMs] as const) },
    {
      name: 'native agent, parked VMMs (now)',
      color: '#ff7f0e',
      pts: r.parkedRows.map((x) => [x.n, x.wallMs] as const),
    },
    ...(previous
      ? [{ name: 'Node.js agent (before)', color: '#d62728', pts: previous.rows.map((x) => [x.n, x.wallMs] as const) }]
      : []),
  ];
  const maxN = Math.max(...series.flatMap((s) => s.pts.map(([n]) => n)), 1);
  const maxMs = Math.max(...series.flatMap((s) => s.pts.map(([, ms]) => ms)), 2000) * 1.1;
  const x = (n: number) => pad.l + (n / maxN) * (W - pad.l - pad.r);
  const y = (ms: number) => H - pad.b - (ms / maxMs) * (H - pad.t - pad.b);
  const ticks = Array.from({ length: 6 }, (_, i) => (maxMs / 5) * i);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">Fork: wall time until every child answers (TCG, 2 cores)</text>`,
    ...ticks.map(
      (t) =>
        `<line x1="${pad.l}" x2="${W - pad.r}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#ddd"/><text x="${pad.l - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${(t / 1000).toFixed(1)} s</text>`,
    ),
    `<line x1="${pad.l}" x2="${W - pad.r}" y1="${y(2000).toFixed(1)}" y2="${y(2000).toFixed(1)}" stroke="#2ca02c" stroke-dasharray="6 4"/><text x="${W - pad.r}" y="${(y(2000) - 4).toFixed(1)}" text-anchor="end" fill="#2ca02c">target for N=50: 2 s</text>`,
    ...r.rows.map(
      (row) => `<text x="${x(row.n).toFixed(1)}" y="${H - pad.b + 16}" text-anchor="middle">${row.n}</text>`,
    ),
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">children forked at once (N)</text>`,
  ];
  series.forEach((s, i) => {
    const d = s.pts.map(([n, ms], j) => `${j === 0 ? 'M' : 'L'}${x(n).toFixed(1)},${y(ms).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const [n, ms] of s.pts)
      out.push(`<circle cx="${x(n).toFixed(1)}" cy="${y(ms).toFixed(1)}" r="3" fill="${s.color}"/>`);
    out.push(
      `<rect x="${pad.l + 10}" y="${pad.t + 8 + i * 18}" width="12" height="3" fill="${s.color}"/><text x="${pad.l + 28}" y="${pad.t + 13 + i * 18}">${s.name}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
