// Fork benchmark (issues 2 and 12), all in one run: fork N = 1 / 10 / 50 children of one
// snapshot until every child answers (wall, CPU per child until it answered, PSS per idle
// child), exec `true` round trips in a just-forked and in a warm child, the quickstart's
// fork-10-and-exec step, Python eval in fresh children (first and second eval), and a cold
// boot of the same image.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreContext } from '../src/core/context.js';
import { coldBoot } from '../src/core/cold-boot.js';
import { disposeAll, forkChildren, percentile } from '../src/core/fork.js';
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
  /** QEMU CPU (user + system) per child at the moment it answered identity; 10 ms resolution. */
  cpuPerChildMs: number;
  cpuMaxMs: number;
  pssPerChildMiB: number;
  pssMaxMiB: number;
}

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
  speedupN1: number;
  exec: ExecRow;
  quickstart: { n: number; wallMs: number; forkMs: number; execMs: number; command: string };
  pythonEval?: EvalRow & { image: string; code: string };
}

const MiB = 1024 * 1024;
/** The command `forkd quickstart` runs in each child. */
const QUICKSTART_COMMAND = QUICKSTART_EXEC;

function p(sorted: number[], q: number): number {
  return percentile(sorted, q) ?? NaN;
}

async function trueRoundTrip(child: Sandbox): Promise<number> {
  const t = performance.now();
  const r = await child.agent.exec({ argv: ['true'] });
  if (r.exitCode !== 0) throw new Error(`true exited ${String(r.exitCode)}: ${r.stderr.toString()}`);
  return performance.now() - t;
}

export async function forkBench(
  core: CoreContext,
  opts: {
    tag: string;
    image: string;
    memMiB: number;
    ns: number[];
    coldBoots: number;
    log: (s: string) => void;
    python?: { tag: string; image: string };
  },
): Promise<ForkBenchResult> {
  const rows: ForkRow[] = [];
  // N=1 is repeated (its single sample varies most: the first restore after a snapshot also
  // warms the host's caches); the run with the median wall time is reported.
  const plan = opts.ns.flatMap((n) => (n === 1 ? [1, 1, 1, 1, 1] : [n]));
  for (const n of plan) {
    const cpu: number[] = [];
    const res = await forkChildren(core, {
      tag: opts.tag,
      n,
      readyTimeoutMs: 120_000,
      onReady: (child) => void processCpuMs(child.pid).then((ms) => ms !== undefined && cpu.push(ms)),
    });
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
        cpuPerChildMs: cpu.reduce((a, b) => a + b, 0) / Math.max(1, cpu.length),
        cpuMaxMs: Math.max(0, ...cpu),
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

  // The quickstart's step 3: fork 10 and run its command in each, as `forkd sandbox run --exec` does.
  const qsStart = performance.now();
  const qs = await forkChildren(core, { tag: opts.tag, n: 10, readyTimeoutMs: 120_000 });
  const qsForked = performance.now();
  try {
    await Promise.all(
      qs.children.map(async (c) => {
        const r = await c.agent.exec({ shell: QUICKSTART_COMMAND });
        if (r.exitCode !== 0) throw new Error(`quickstart command failed: ${r.stderr.toString()}`);
      }),
    );
  } finally {
    await disposeAll(qs.children);
  }
  const qsEnd = performance.now();
  const quickstart = {
    n: 10,
    wallMs: qsEnd - qsStart,
    forkMs: qsForked - qsStart,
    execMs: qsEnd - qsForked,
    command: QUICKSTART_COMMAND,
  };
  opts.log(`quickstart step: ${quickstart.wallMs.toFixed(0)} ms`);

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
  const singles = rows.filter((r) => r.n === 1).sort((a, b) => a.wallMs - b.wallMs);
  const medianSingle = singles[Math.floor(singles.length / 2)];
  for (const r of singles) if (r !== medianSingle) rows.splice(rows.indexOf(r), 1);
  const sorted = [...coldBootMs].sort((a, b) => a - b);
  const coldBootMedianMs = sorted[Math.floor(sorted.length / 2)] ?? NaN;
  const n1 = rows.find((r) => r.n === 1);
  return {
    image: opts.image,
    coldBootMs,
    coldBootMedianMs,
    rows,
    speedupN1: n1 ? coldBootMedianMs / n1.wallMs : NaN,
    exec,
    quickstart,
    ...(pythonEval ? { pythonEval } : {}),
  };
}

export function forkMarkdown(
  r: ForkBenchResult,
  previous?: { date: string; rows: { n: number; wallMs: number; pssPerChildMiB: number }[]; speedupN1: number },
): string {
  const prev = (n: number) => previous?.rows.find((x) => x.n === n);
  const lines = [
    '| N | ready | wall until all answer | first ready | last ready | per-child p50 | per-child p90 | CPU / child until it answered (avg, max) | PSS / idle child (avg, max) |',
    '|---|---|---|---|---|---|---|---|---|',
    ...r.rows.map(
      (x) =>
        `| ${x.n} | ${x.ready}/${x.n} | **${x.wallMs.toFixed(0)} ms** | ${x.firstReadyMs.toFixed(0)} ms | ${x.lastReadyMs.toFixed(0)} ms | ${x.p50Ms.toFixed(0)} ms | ${x.p90Ms.toFixed(0)} ms | ${x.cpuPerChildMs.toFixed(0)} ms, ${x.cpuMaxMs.toFixed(0)} ms | ${x.pssPerChildMiB.toFixed(1)} MiB, ${x.pssMaxMiB.toFixed(1)} MiB |`,
    ),
    '',
    `- exec \`true\` round trip: first exec in each of ${r.exec.firstMs.length} just-forked children ${r.exec.firstMs.map((x) => x.toFixed(0)).join(', ')} ms; in a warm child p50 **${r.exec.warmP50Ms.toFixed(1)} ms**, p90 ${r.exec.warmP90Ms.toFixed(1)} ms (${r.exec.warmRuns} runs).`,
    `- The quickstart's step (fork ${r.quickstart.n}, then \`${r.quickstart.command}\` in each): **${r.quickstart.wallMs.toFixed(0)} ms** (fork ${r.quickstart.forkMs.toFixed(0)} ms + exec ${r.quickstart.execMs.toFixed(0)} ms).`,
    ...(r.pythonEval
      ? [
          `- Python eval \`${r.pythonEval.code}\` in ${r.pythonEval.children} fresh children of a warm \`${r.pythonEval.image}\` snapshot: first eval p50 ${r.pythonEval.firstP50Ms.toFixed(0)} ms (p90 ${r.pythonEval.firstP90Ms.toFixed(0)} ms), second eval p50 ${r.pythonEval.secondP50Ms.toFixed(0)} ms (p90 ${r.pythonEval.secondP90Ms.toFixed(0)} ms).`,
        ]
      : []),
    `- Cold boot of the same image until the agent answers (median of ${r.coldBootMs.length}): **${r.coldBootMedianMs.toFixed(0)} ms** (${r.coldBootMs.map((x) => x.toFixed(0)).join(', ')} ms). Fork of one child vs cold boot: **${r.speedupN1.toFixed(1)}x** faster.`,
    '',
    ...(previous
      ? [
          `Previous figures (${previous.date}, the Node.js agent in the default image) beside these:`,
          '',
          '| N | wall before | wall now | PSS / child before | PSS / child now |',
          '|---|---|---|---|---|',
          ...r.rows.map(
            (x) =>
              `| ${x.n} | ${prev(x.n)?.wallMs.toFixed(0) ?? '-'} ms | ${x.wallMs.toFixed(0)} ms | ${prev(x.n)?.pssPerChildMiB.toFixed(1) ?? '-'} MiB | ${x.pssPerChildMiB.toFixed(1)} MiB |`,
          ),
          `| fork vs cold boot | ${previous.speedupN1.toFixed(1)}x | ${r.speedupN1.toFixed(1)}x | | |`,
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
  const cores = 2;
  const floorS = n50 ? (50 * n50.cpuPerChildMs) / cores / 1000 : NaN;
  return [
    'Why the missed targets are missed (measured):',
    `- Readiness is CPU-bound: a child spends ${(n50?.cpuPerChildMs ?? NaN).toFixed(0)} ms of CPU until it answers (QEMU's own start and the`,
    '  restore ~20-30 ms, then the guest kernel translating ~5,500 blocks before the identity reply: scheduler, timer,',
    '  RCU, virtio-serial and syscall paths that every child runs for the first time; see child-tuning.md). The native',
    `  agent's own code is a few hundred of those blocks. 50 children x that CPU on ${cores} cores is ${floorS.toFixed(1)} s at best; the`,
    '  rest of the wall time is the host side (QEMU spawns, QMP and agent I/O of this process) and idle',
    "  children's timers on the same 2 cores.",
    "- The quickstart's step and the first exec in a child: the first process a child starts translates the kernel's",
    '  fork/exec/mm paths and busybox (~11,000 more blocks, 150-200 ms of CPU); the later ones are cheap (the warm',
    '  round trip above). The quickstart command starts 5 processes in each of 10 fresh children.',
    '- PSS per idle child: ~5 MiB QEMU heap, ~6 MiB of TCG buffers and state, ~2 MiB of guest pages the child dirtied,',
    '  the rest shared mappings; THP is already off for QEMU (child-tuning.md).',
    '- Cold boot is not slower: the lean image boots faster than the Node one did, so the ratio moves less than fork.',
    "- Not tried yet: pre-spawned (parked) VMMs, which would take QEMU's start (~20-30 ms CPU, ~50 ms wall) off the",
    "  critical path of a spawn; a smaller -cpu model; a guest kernel built for this (this one is Debian's cloud kernel).",
  ].join('\n');
}

/** Issue 12's targets for this 2-core TCG machine, each with the measured value and a verdict. */
export function targetsMarkdown(r: ForkBenchResult): string {
  const n50 = r.rows.find((x) => x.n === 50);
  const n1 = r.rows.find((x) => x.n === 1);
  const ms = (v: number | undefined) => `${(v ?? NaN).toFixed(0)} ms`;
  const rows: [string, string, string, number, number][] = [
    ['50 children answering', 'at most 2 s wall', ms(n50?.wallMs), n50?.wallMs ?? NaN, 2000],
    ['one child answering', 'at most 100 ms', ms(n1?.wallMs), n1?.wallMs ?? NaN, 100],
    [
      'CPU per child until it answers (N=50 avg)',
      'at most 80 ms',
      ms(n50?.cpuPerChildMs),
      n50?.cpuPerChildMs ?? NaN,
      80,
    ],
    [
      'exec `true` round trip in a warm child (p50)',
      'at most 30 ms',
      `${r.exec.warmP50Ms.toFixed(1)} ms`,
      r.exec.warmP50Ms,
      30,
    ],
    ['quickstart fork-10-and-exec', 'at most 2 s', ms(r.quickstart.wallMs), r.quickstart.wallMs, 2000],
    [
      'PSS per idle child (N=50)',
      'at most 16 MiB',
      `${(n50?.pssPerChildMiB ?? NaN).toFixed(1)} MiB`,
      n50?.pssPerChildMiB ?? NaN,
      16,
    ],
  ];
  const speedOk = r.speedupN1 >= 50;
  return [
    '| target | wanted | measured | met |',
    '|---|---|---|---|',
    ...rows.map(([what, want, got, value, limit]) => {
      const verdict = value <= limit ? 'yes' : `**no** (${((value / limit - 1) * 100).toFixed(0)}% over)`;
      return `| ${what} | ${want} | ${got} | ${verdict} |`;
    }),
    `| fork vs cold boot (N=1) | at least 50x | ${r.speedupN1.toFixed(1)}x | ${speedOk ? 'yes' : `**no** (${(50 / r.speedupN1).toFixed(1)}x short)`} |`,
  ].join('\n');
}

/** A small SVG chart: wall time until all children answer against N, now and before. */
export function forkChartSvg(r: ForkBenchResult, previous?: { rows: { n: number; wallMs: number }[] }): string {
  const W = 560;
  const H = 320;
  const pad = { l: 60, r: 20, t: 30, b: 45 };
  const series = [
    { name: 'native agent (now)', color: '#1f77b4', pts: r.rows.map((x) => [x.n, x.wallMs] as const) },
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
