// Run one command or one eval in a child and summarise it for printing.
import { messageOf } from '../lib/errors.js';
import type { Sandbox } from '../core/sandbox.js';

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

export async function runInChild(child: Sandbox, work: ChildWork, timeoutMs: number): Promise<ChildOutput> {
  const started = Date.now();
  try {
    if (work.kind === 'exec') {
      const r = await child.agent.exec({ shell: work.cmd, timeoutMs });
      const ms = Date.now() - started;
      const how = r.timedOut ? 'timed out' : r.signal ? `signal ${r.signal}` : `exit ${String(r.exitCode)}`;
      return {
        id: child.id,
        ok: r.exitCode === 0,
        summary: `${how}, ${ms} ms`,
        stdout: r.stdout.toString('utf8'),
        stderr: r.stderr.toString('utf8'),
        exitCode: r.exitCode,
        durationMs: ms,
      };
    }
    const r = await child.agent.eval({ code: work.code, language: work.language });
    const ms = Date.now() - started;
    const ok = r.error === undefined;
    const summary = ok
      ? `= ${JSON.stringify(r.value)}, ${ms} ms`
      : `${r.error?.name ?? 'Error'}: ${r.error?.message ?? ''}`;
    return { id: child.id, ok, summary, stdout: r.stdout, stderr: r.stderr, value: r.value, durationMs: ms };
  } catch (err) {
    return {
      id: child.id,
      ok: false,
      summary: `failed: ${messageOf(err)}`,
      stdout: '',
      stderr: '',
      durationMs: Date.now() - started,
    };
  }
}
