// Run one command or one eval in a sandbox and summarise it for printing: `runInChild` for a
// child this process forked (local mode), `runInDaemonSandbox` for one the daemon holds.
import { messageOf } from '../lib/errors.js';
import type { Sandbox } from '../core/sandbox.js';
import type { Sandbox as DaemonSandbox } from 'forkd';

export type ChildWork = { kind: 'exec'; cmd: string } | { kind: 'eval'; code: string; language: 'js' | 'python' };

export interface ChildOutput {
  id: string;
  ok: boolean;
  summary: string;
  stdout: string;
  stderr: string;
  exitCode?: number | null;
  value?: unknown;
  durationMs: number;
}

interface ExecOutcome {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

interface EvalOutcome {
  value?: unknown;
  error?: { name?: string; message?: string } | null | undefined;
  stdout: string;
  stderr: string;
}

/** The same summary lines whoever ran it. */
async function summarise(
  id: string,
  work: ChildWork,
  exec: (cmd: string) => Promise<ExecOutcome>,
  evaluate: (code: string, language: 'js' | 'python') => Promise<EvalOutcome>,
): Promise<ChildOutput> {
  const started = Date.now();
  try {
    if (work.kind === 'exec') {
      const r = await exec(work.cmd);
      const ms = Date.now() - started;
      const how = r.timedOut ? 'timed out' : r.signal ? `signal ${r.signal}` : `exit ${String(r.exitCode)}`;
      return {
        id,
        ok: r.exitCode === 0,
        summary: `${how}, ${ms} ms`,
        stdout: r.stdout,
        stderr: r.stderr,
        exitCode: r.exitCode,
        durationMs: ms,
      };
    }
    const r = await evaluate(work.code, work.language);
    const ms = Date.now() - started;
    const ok = r.error === undefined || r.error === null;
    const summary = ok
      ? `= ${JSON.stringify(r.value)}, ${ms} ms`
      : `${r.error?.name ?? 'Error'}: ${r.error?.message ?? ''}`;
    return { id, ok, summary, stdout: r.stdout, stderr: r.stderr, value: r.value, durationMs: ms };
  } catch (err) {
    return {
      id,
      ok: false,
      summary: `failed: ${messageOf(err)}`,
      stdout: '',
      stderr: '',
      durationMs: Date.now() - started,
    };
  }
}

export function runInChild(child: Sandbox, work: ChildWork, timeoutMs: number): Promise<ChildOutput> {
  return summarise(
    child.id,
    work,
    async (cmd) => {
      const r = await child.agent.exec({ shell: cmd, timeoutMs });
      return { ...r, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
    },
    (code, language) => child.agent.eval({ code, language }),
  );
}

export function runInDaemonSandbox(sb: DaemonSandbox, work: ChildWork, timeoutMs: number): Promise<ChildOutput> {
  return summarise(
    sb.id,
    work,
    (cmd) => sb.commands.run(cmd, { timeoutMs, throwOnNonZeroExit: false }),
    (code, language) => sb.eval(code, { language, timeoutSecs: Math.max(1, Math.ceil(timeoutMs / 1000)) }),
  );
}
