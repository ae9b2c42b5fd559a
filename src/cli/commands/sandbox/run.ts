// `forkd sandbox run --tag T -n N [--exec CMD | --eval CODE]`: start N copy-on-write sandboxes of
// a snapshot, optionally run a command or evaluate code in each, print their outputs and
// timings, and stop them. Local mode forks them here (and reports memory); daemon mode spawns
// them in the daemon and kills them at the end, Ctrl-C included.
import { assertTag } from '../../../lib/tag.js';
import { ForkdError } from '../../../lib/errors.js';
import { disposeAll, forkChildren, type ForkResult } from '../../../core/fork.js';
import { FORK_N_RANGE } from '../../../lib/contract.js';
import { measureMemory, type MemoryReport } from '../../../core/memory-report.js';
import type { Sandbox } from '../../../core/sandbox.js';
import { hostAvailableBytes } from '../../../host/memory.js';
import { ForkdApiError, Sandbox as DaemonSandbox, type Controller, type ApiSandbox } from 'forkd';
import { formatMiB, formatMs, intFlag } from '../../args.js';
import { runInChild, runInDaemonSandbox, type ChildOutput, type ChildWork } from '../../child-work.js';
import { EXIT_FAILURE, EXIT_OK, type CliContext, type Command } from '../../command.js';
import { describeApiError, openController, parseModeFlags } from '../../daemon.js';
import { clientFlags, JSON_FLAG, LOCAL_DATA_DIR_FLAG, N_FLAG, type FlagValues } from '../../flags.js';
import { openLocal, withSignalCleanup } from '../../local.js';
import { createProgress, type Progress } from '../../progress.js';
import { SPAWN_TIMEOUT_SECS } from './spawn.js';

const FLAGS = {
  tag: { type: 'string', value: 'TAG', help: 'snapshot to start the sandboxes from (required)' },
  n: N_FLAG,
  exec: { type: 'string', value: 'CMD', help: 'shell command to run in each (sh -c)' },
  eval: { type: 'string', value: 'CODE', help: 'code to evaluate in each instead' },
  language: { type: 'string', value: 'js|python', default: 'js', help: 'language of --eval' },
  'timeout-secs': { type: 'string', value: 'SECS', default: '60', help: 'kill --exec / bound --eval after this long' },
  json: JSON_FLAG,
  'ready-timeout-secs': {
    type: 'string',
    value: 'SECS',
    mode: 'local',
    default: '60',
    help: 'how long each child may take to become ready',
  },
  'data-dir': LOCAL_DATA_DIR_FLAG,
  ...clientFlags(SPAWN_TIMEOUT_SECS),
} as const;

type Values = FlagValues<typeof FLAGS>;

interface Plan {
  tag: string;
  n: number;
  work: ChildWork | undefined;
  timeoutMs: number;
}

export const sandboxRunCommand: Command = {
  name: 'sandbox run',
  group: 'sandboxes',
  modes: 'both',
  summary: 'Fork N sandboxes of a snapshot, run a command or code in each, report outputs and timings, stop them',
  usage: ['sandbox run --tag TAG [-n N] [--exec CMD | --eval CODE [--language js|python]] [flags]'],
  flags: FLAGS,
  examples: [
    `forkd sandbox run --tag py -n 10 --exec 'python3 -c "import random; print(random.random())"'`,
    `forkd sandbox run --tag py -n 2 --eval 'numpy.zeros(3).tolist()' --language python --json`,
  ],
  notes: [
    'Exit 1 when a sandbox failed to start, a command exited non-zero or code threw. Local mode also reports per-child PSS and the host memory used.',
  ],
  async run(argv, ctx) {
    const { values, mode } = parseModeFlags(ctx, argv, FLAGS);
    if (values.tag === undefined) throw new ForkdError('invalid_argument', '--tag is required');
    const tag = assertTag(values.tag, 'snapshot tag');
    const n = intFlag('n', values.n, FORK_N_RANGE.default, FORK_N_RANGE);
    if (values.exec !== undefined && values.eval !== undefined)
      throw new ForkdError('invalid_argument', 'give --exec or --eval, not both');
    const language = values.language ?? 'js';
    if (language !== 'js' && language !== 'python')
      throw new ForkdError('invalid_argument', `--language must be js or python, got ${JSON.stringify(language)}`);
    const timeoutMs = intFlag('timeout-secs', values['timeout-secs'], 60, { min: 1, max: 86_400 }) * 1000;
    const work: ChildWork | undefined =
      values.exec !== undefined
        ? { kind: 'exec', cmd: values.exec }
        : values.eval !== undefined
          ? { kind: 'eval', code: values.eval, language }
          : undefined;
    const plan: Plan = { tag, n, work, timeoutMs };
    return mode === 'local' ? runHere(plan, values, ctx) : runInDaemon(plan, values, ctx);
  },
};

async function runHere({ tag, n, work, timeoutMs }: Plan, values: Values, ctx: CliContext): Promise<number> {
  const readyTimeoutMs = intFlag('ready-timeout-secs', values['ready-timeout-secs'], 60, { min: 1, max: 3600 }) * 1000;
  const core = await openLocal(ctx, values['data-dir']);
  const progress = createProgress(ctx, !values.json || ctx.interactive);
  let children: Sandbox[] = [];
  return withSignalCleanup(
    () => disposeAll(children),
    async () => {
      const availableBefore = await hostAvailableBytes();
      progress.step(`forking ${n} children of ${tag}`);
      const result = await forkChildren(core, {
        tag,
        n,
        readyTimeoutMs,
        onReady: (_c, done) => progress.step(`${done}/${n} children ready`),
      });
      children = result.children;
      progress.done(`${result.children.length}/${n} children ready in ${formatMs(result.wallMs)}`);
      const memory = await measureMemory(children, availableBefore);
      const outputs = work ? await runAll(progress, children, (c) => runInChild(c, work, timeoutMs)) : [];
      const alive = children.filter((c) => c.vm.process.exited === undefined).length;
      if (values.json) ctx.out(`${JSON.stringify(jsonReport(tag, n, result, memory, outputs, alive), null, 2)}\n`);
      else ctx.out(humanReport(tag, n, result, memory, outputs, alive));
      const ok = result.failures.length === 0 && outputs.every((o) => o.ok) && alive === children.length;
      return ok ? EXIT_OK : EXIT_FAILURE;
    },
  );
}

async function runAll<T>(
  progress: Progress,
  items: T[],
  run: (item: T) => Promise<ChildOutput>,
): Promise<ChildOutput[]> {
  progress.step(`running in ${items.length} children`);
  const outputs = await Promise.all(items.map(run));
  progress.done(`ran in ${items.length} children`);
  return outputs;
}

function jsonReport(
  tag: string,
  n: number,
  r: ForkResult,
  memory: MemoryReport,
  outputs: ChildOutput[],
  alive: number,
): unknown {
  return {
    tag,
    requested: n,
    ready: r.children.length,
    alive,
    failures: r.failures,
    timings: {
      wallMs: r.wallMs,
      firstReadyMs: r.firstReadyMs,
      lastReadyMs: r.lastReadyMs,
      readyP50Ms: r.readyP50Ms,
      readyP90Ms: r.readyP90Ms,
    },
    memory,
    children: r.children.map((c) => ({
      id: c.id,
      pid: c.pid,
      ...c.timings,
      output: outputs.find((o) => o.id === c.id),
    })),
  };
}

function outputLines(outputs: ChildOutput[]): string[] {
  const lines: string[] = [];
  for (const o of outputs) {
    lines.push(`--- ${o.id}: ${o.summary} ---`);
    if (o.stdout) lines.push(o.stdout.replace(/\n$/, ''));
    if (o.stderr) lines.push(`[stderr] ${o.stderr.replace(/\n$/, '')}`);
  }
  return lines;
}

function humanReport(
  tag: string,
  n: number,
  r: ForkResult,
  m: MemoryReport,
  outputs: ChildOutput[],
  alive: number,
): string {
  const lines = outputLines(outputs);
  for (const f of r.failures) lines.push(`✗ ${f}`);
  lines.push(
    `fork ${tag}: ${r.children.length}/${n} ready, ${alive} alive`,
    `  first ready ${formatMs(r.firstReadyMs)}, last ready ${formatMs(r.lastReadyMs)}, per-child p50 ${formatMs(r.readyP50Ms)} p90 ${formatMs(r.readyP90Ms)}, total wall ${formatMs(r.wallMs)}`,
    `  memory: PSS per child avg ${formatMiB(m.pssAvgBytes)} max ${formatMiB(m.pssMaxBytes)} (sum ${formatMiB(m.pssSumBytes)}); host available memory -${formatMiB(m.hostAvailableDeltaBytes)}`,
  );
  return `${lines.join('\n')}\n`;
}

async function runInDaemon({ tag, n, work, timeoutMs }: Plan, values: Values, ctx: CliContext): Promise<number> {
  const c = await openController(values, SPAWN_TIMEOUT_SECS);
  const progress = createProgress(ctx, !values.json || ctx.interactive);
  let spawned: ApiSandbox[] = [];
  return withSignalCleanup(
    () => killAll(c, spawned, ctx),
    async () => {
      progress.step(`spawning ${n} sandbox${n === 1 ? '' : 'es'} of ${tag} at ${c.url}`);
      const started = Date.now();
      const res = await c.sandboxes.spawn({ snapshot_tag: tag, n }, { timeoutMs: c.transport.defaultTimeoutMs });
      spawned = res.sandboxes;
      const wallMs = Date.now() - started;
      const running = res.sandboxes.filter((s) => s.state === 'running');
      const failures = res.sandboxes
        .filter((s) => s.state !== 'running')
        .map((s) => `${s.id} ${s.state}: ${s.reason ?? 'no reason given'}`);
      progress.done(`${running.length}/${n} running in ${formatMs(wallMs)}`);
      for (const w of res.warnings) ctx.err(`warning: ${w}\n`);
      const outputs = work
        ? await runAll(progress, running, (s) => runInDaemonSandbox(DaemonSandbox.of(c, s), work, timeoutMs))
        : [];
      if (values.json) {
        const children = running.map((s) => ({ id: s.id, output: outputs.find((o) => o.id === s.id) }));
        const report = { tag, requested: n, ready: running.length, failures, timings: { wallMs }, children };
        ctx.out(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        const lines = [...outputLines(outputs), ...failures.map((f) => `✗ ${f}`)];
        lines.push(
          `fork ${tag}: ${running.length}/${n} ready in the daemon at ${c.url}, total wall ${formatMs(wallMs)}`,
        );
        ctx.out(`${lines.join('\n')}\n`);
      }
      return failures.length === 0 && outputs.every((o) => o.ok) ? EXIT_OK : EXIT_FAILURE;
    },
  );
}

/** Kills what `sandbox run` spawned; one that is already gone is fine, any other failure is reported. */
async function killAll(c: Controller, sandboxes: readonly ApiSandbox[], ctx: CliContext): Promise<void> {
  for (const s of sandboxes) {
    try {
      await c.sandboxes.kill(s.id);
    } catch (err) {
      if (err instanceof ForkdApiError && err.code === 'not_found') continue;
      ctx.err(
        `forkd ${ctx.name}: could not kill ${s.id}: ${err instanceof ForkdApiError ? describeApiError(err) : String(err)}\n`,
      );
    }
  }
}
