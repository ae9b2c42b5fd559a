// `forkd fork --tag T -n N`: restore N children of a snapshot in parallel, optionally run a
// command or evaluate code in each, print their outputs, timings and memory, tear them down.
import { parseArgs } from 'node:util';
import { assertTag } from '../../lib/tag.js';
import { ForkdError } from '../../lib/errors.js';
import { disposeAll, forkChildren, FORK_N_RANGE, type ForkResult } from '../../core/fork.js';
import { measureMemory, type MemoryReport } from '../../core/memory-report.js';
import type { Sandbox } from '../../core/sandbox.js';
import { formatMiB, formatMs, intFlag } from '../args.js';
import { openLocal, withSignalCleanup } from '../local.js';
import { createProgress } from '../progress.js';
import { EXIT_FAILURE, EXIT_OK, type Command } from '../command.js';
import { hostAvailableBytes } from '../../host/memory.js';
import { runInChild, type ChildOutput, type ChildWork } from '../child-work.js';

export const forkCommand: Command = {
  name: 'fork',
  summary: 'Fork N copy-on-write children of a snapshot, run a command or code in each, report timings and memory',
  usage:
    'fork --tag TAG [-n 1] [--exec CMD | --eval CODE [--language js|python]] [--timeout-secs 60] [--ready-timeout-secs 60] [--data-dir DIR] [--json]',
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        tag: { type: 'string' },
        n: { type: 'string', short: 'n' },
        exec: { type: 'string' },
        eval: { type: 'string' },
        language: { type: 'string', default: 'js' },
        'timeout-secs': { type: 'string' },
        'ready-timeout-secs': { type: 'string' },
        'data-dir': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    if (values.tag === undefined) throw new ForkdError('invalid_argument', '--tag is required');
    const tag = assertTag(values.tag, 'snapshot tag');
    const n = intFlag('n', values.n, 1, FORK_N_RANGE);
    if (values.exec !== undefined && values.eval !== undefined)
      throw new ForkdError('invalid_argument', 'give --exec or --eval, not both');
    if (values.language !== 'js' && values.language !== 'python')
      throw new ForkdError(
        'invalid_argument',
        `--language must be js or python, got ${JSON.stringify(values.language)}`,
      );
    const language: 'js' | 'python' = values.language;
    const timeoutMs = intFlag('timeout-secs', values['timeout-secs'], 60, { min: 1, max: 86_400 }) * 1000;
    const readyTimeoutMs =
      intFlag('ready-timeout-secs', values['ready-timeout-secs'], 60, { min: 1, max: 3600 }) * 1000;
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
        let outputs: ChildOutput[] = [];
        const work: ChildWork | undefined =
          values.exec !== undefined
            ? { kind: 'exec' as const, cmd: values.exec }
            : values.eval !== undefined
              ? { kind: 'eval' as const, code: values.eval, language }
              : undefined;
        if (work) {
          progress.step(`running in ${children.length} children`);
          outputs = await Promise.all(children.map((c) => runInChild(c, work, timeoutMs)));
          progress.done(`ran in ${children.length} children`);
        }
        const alive = children.filter((c) => c.vm.process.exited === undefined).length;
        if (values.json) ctx.out(`${JSON.stringify(jsonReport(tag, n, result, memory, outputs, alive), null, 2)}\n`);
        else ctx.out(humanReport(tag, n, result, memory, outputs, alive));
        const ok = result.failures.length === 0 && outputs.every((o) => o.ok) && alive === children.length;
        return ok ? EXIT_OK : EXIT_FAILURE;
      },
    );
  },
};

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

function humanReport(
  tag: string,
  n: number,
  r: ForkResult,
  m: MemoryReport,
  outputs: ChildOutput[],
  alive: number,
): string {
  const lines: string[] = [];
  for (const o of outputs) {
    lines.push(`--- ${o.id}: ${o.summary} ---`);
    if (o.stdout) lines.push(o.stdout.replace(/\n$/, ''));
    if (o.stderr) lines.push(`[stderr] ${o.stderr.replace(/\n$/, '')}`);
  }
  for (const f of r.failures) lines.push(`✗ ${f}`);
  lines.push(
    `fork ${tag}: ${r.children.length}/${n} ready, ${alive} alive`,
    `  first ready ${formatMs(r.firstReadyMs)}, last ready ${formatMs(r.lastReadyMs)}, per-child p50 ${formatMs(r.readyP50Ms)} p90 ${formatMs(r.readyP90Ms)}, total wall ${formatMs(r.wallMs)}`,
    `  memory: PSS per child avg ${formatMiB(m.pssAvgBytes)} max ${formatMiB(m.pssMaxBytes)} (sum ${formatMiB(m.pssSumBytes)}); host available memory -${formatMiB(m.hostAvailableDeltaBytes)}`,
  );
  return `${lines.join('\n')}\n`;
}
