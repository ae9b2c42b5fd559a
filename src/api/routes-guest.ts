// Handlers of the routes that act inside a running sandbox through its agent: exec (whole or
// streamed as NDJSON), eval, ping, files. The sandbox must be `running` (else 409).
import { StringDecoder } from 'node:string_decoder';
import { performance } from 'node:perf_hooks';
import type { SandboxManager } from '../core/controller/sandboxes.js';
import type { ExecRequest } from '../core/api-surface.js';
import { type Call, type Handler, errorBody } from './http.js';
import { isForkdError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { evalJson, execJson, fileEntryJson } from './serialize.js';
import type { Defaulted, EvalBody as WireEvalBody, ExecBody as WireExecBody } from '../lib/contract.js';

// The bodies of lib/contract.ts as the handlers see them: validated, the schema's defaults in.
type ExecBody = Defaulted<WireExecBody, 'timeout_secs'>;
type EvalBody = Defaulted<WireEvalBody, 'language' | 'timeout_secs'>;

function execRequest(b: ExecBody): ExecRequest & { background?: false } {
  return {
    ...(b.args ? { argv: b.args } : {}),
    ...(b.cmd !== undefined ? { shell: b.cmd } : {}),
    ...(b.env ? { env: b.env } : {}),
    ...(b.cwd ? { cwd: b.cwd } : {}),
    ...(b.stdin !== undefined ? { stdin: b.stdin } : {}),
    timeoutMs: b.timeout_secs * 1000,
  };
}

export function guestHandlers(sandboxes: SandboxManager, logger: Logger): Record<string, Handler> {
  return {
    exec: async ({ params, body, signal }) => {
      const live = sandboxes.running(params.id!);
      const result = await live.agent.exec(execRequest(body as ExecBody), { signal });
      return { status: 200, json: execJson(result) };
    },
    execStream: (call) => execStream(sandboxes, logger, call),
    eval: async ({ params, body, signal }) => {
      const b = body as EvalBody;
      const live = sandboxes.running(params.id!);
      const result = await live.agent.eval(
        { code: b.code, language: b.language, timeoutMs: b.timeout_secs * 1000 },
        { signal },
      );
      return { status: 200, json: evalJson(result) };
    },
    ping: async ({ params, signal }) => {
      const live = sandboxes.running(params.id!);
      const t0 = performance.now();
      const pong = await live.agent.ping({ signal, timeoutMs: 10_000 });
      const latency = Math.round((performance.now() - t0) * 1000) / 1000;
      return {
        status: 200,
        json: { ok: true, uptime_ms: pong.uptimeMs, agent_version: pong.agentVersion, latency_ms: latency },
      };
    },
    readFile: async ({ params, query, signal }) => {
      const bytes = await sandboxes.running(params.id!).agent.files.read(query.path!, { signal });
      return { status: 200, bytes };
    },
    writeFile: async ({ params, query, body, signal }) => {
      const live = sandboxes.running(params.id!);
      const mode = query.mode === undefined ? {} : { mode: parseInt(query.mode, 8) };
      const r = await live.agent.files.write(query.path!, body as Buffer, { signal, ...mode });
      return { status: 200, json: { path: query.path, size: r.size, sha256: r.sha256 } };
    },
    removeFile: async ({ params, query, signal }) => {
      await sandboxes
        .running(params.id!)
        .agent.files.remove(query.path!, { signal, recursive: query.recursive === 'true' });
      return { status: 204 };
    },
    listFiles: async ({ params, query, signal }) => {
      const r = await sandboxes.running(params.id!).agent.files.list(query.path!, { signal });
      return { status: 200, json: { path: query.path, entries: r.entries.map(fileEntryJson), truncated: r.truncated } };
    },
    statFile: async ({ params, query, signal }) => {
      const entry = await sandboxes.running(params.id!).agent.files.stat(query.path!, { signal });
      return { status: 200, json: { path: query.path, ...fileEntryJson(entry) } };
    },
    makeDir: async ({ params, body, signal }) => {
      const b = body as { path: string; parents: boolean };
      const files = sandboxes.running(params.id!).agent.files;
      // E2B's makeDir answers false for a directory already there; the agent's mkdir -p does
      // not say, so look first (a directory made in between is reported as made: harmless).
      if (b.parents) {
        const there = await files.stat(b.path, { signal }).catch((err: unknown) => {
          if (isForkdError(err, 'not_found')) return undefined;
          throw err;
        });
        if (there?.type === 'dir') return { status: 200, json: { path: b.path, created: false } };
      }
      await files.mkdir(b.path, { signal, parents: b.parents });
      return { status: 200, json: { path: b.path, created: true } };
    },
    renameFile: async ({ params, body, signal }) => {
      const b = body as { from: string; to: string };
      const files = sandboxes.running(params.id!).agent.files;
      await files.rename(b.from, b.to, { signal });
      return { status: 200, json: { path: b.to, ...fileEntryJson(await files.stat(b.to, { signal })) } };
    },
  };
}

/**
 * NDJSON: one line per output chunk as the agent streams it (UTF-8 decoded per stream, so a
 * character split across chunks is not mangled), then one `exit` line, or an `error` line if
 * the exec failed after the 200 was sent. Errors before the first byte are ordinary errors;
 * one after it reaches the client only as that line, so it is logged here too.
 */
async function execStream(
  sandboxes: SandboxManager,
  logger: Logger,
  { params, body, res, signal, requestId }: Call,
): Promise<{ streamed: true }> {
  const live = sandboxes.running(params.id!);
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/x-ndjson; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.flushHeaders();
  const line = (v: unknown): void => void res.write(`${JSON.stringify(v)}\n`);
  const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  const chunk = (type: 'stdout' | 'stderr') => (b: Buffer) => {
    const data = decoders[type].write(b);
    if (data) line({ type, data });
  };
  try {
    const r = await live.agent.exec(execRequest(body as ExecBody), {
      signal,
      onStdout: chunk('stdout'),
      onStderr: chunk('stderr'),
      // Everything went to the client already; keep no copy.
      maxOutputBytes: 0,
    });
    for (const type of ['stdout', 'stderr'] as const) {
      const rest = decoders[type].end();
      if (rest) line({ type, data: rest });
    }
    line({
      type: 'exit',
      exit_code: r.exitCode,
      signal: r.signal,
      truncated: false,
      timed_out: r.timedOut,
      duration_ms: r.durationMs,
    });
  } catch (err) {
    const log = logger.child({ sandbox_id: params.id, request_id: requestId });
    // errorBody logs an unknown error with its stack; a ForkdError (the agent gone, a timeout) is logged here.
    const { body: e } = errorBody(err, requestId, log);
    if (signal.aborted) log.info('streamed exec cancelled: the client went away', { code: e.code });
    else if (e.code !== 'internal') log.warn('streamed exec failed after its 200', { code: e.code, error: e.error });
    line({ type: 'error', error: e.error, code: e.code });
  }
  res.end();
  return { streamed: true };
}
