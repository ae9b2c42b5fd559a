// Handlers of a sandbox's interactive processes (core/processes.ts): start and connect stream
// NDJSON event lines (output base64, byte-exact for terminals); input, close-input, signal and
// resize act on a running one by pid. A stream ending (the client gone) leaves the process
// running. Output goes out at the client's pace: a client too slow for a chatty process is cut
// off by the registry's bounded queue (an `error` line), never buffered without bound here.
import type { ServerResponse } from 'node:http';
import type { SandboxManager } from '../core/controller/sandboxes.js';
import type { ProcessEvent, ProcessSignal, ProcessStream, StartProcessRequest } from '../core/processes.js';
import { ForkdError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { type Call, type Handler, errorBody } from './http.js';

interface StartBody {
  args?: string[];
  cmd?: string;
  env?: Record<string, string>;
  cwd?: string;
  pty?: { cols: number; rows: number };
  stdin: boolean;
  timeout_secs: number;
  tag?: string;
}

function startRequest(b: StartBody): StartProcessRequest {
  return {
    ...(b.args ? { argv: b.args } : {}),
    ...(b.cmd !== undefined ? { shell: b.cmd } : {}),
    ...(b.env ? { env: b.env } : {}),
    ...(b.cwd ? { cwd: b.cwd } : {}),
    ...(b.pty ? { pty: b.pty } : {}),
    ...(b.stdin ? { stdin: true } : {}),
    ...(b.tag !== undefined ? { tag: b.tag } : {}),
    timeoutMs: b.timeout_secs * 1000,
  };
}

/** The path's pid; one beyond any pid names no process (404, like an unknown one). */
function pidOf(call: Call): number {
  const pid = Number(call.params.pid);
  if (!Number.isSafeInteger(pid) || pid > 2 ** 31 - 1) {
    throw new ForkdError('not_found', `no running process with pid ${call.params.pid} in this sandbox`);
  }
  return pid;
}

function eventJson(e: ProcessEvent): Record<string, unknown> {
  if (e.type === 'start') return { type: 'start', pid: e.pid };
  if (e.type === 'end') {
    return {
      type: 'end',
      exit_code: e.exitCode,
      signal: e.signal,
      timed_out: e.timedOut,
      ...(e.error !== undefined ? { error: e.error } : {}),
    };
  }
  return { type: e.type, data: e.data.toString('base64') };
}

export function processHandlers(sandboxes: SandboxManager, logger: Logger): Record<string, Handler> {
  const procs = (call: Call) => sandboxes.running(call.params.id!).processes;
  return {
    listProcesses: (call) =>
      Promise.resolve({
        status: 200,
        json: {
          processes: procs(call)
            .list()
            .map((p) => ({
              pid: p.pid,
              ...(p.tag !== undefined ? { tag: p.tag } : {}),
              ...(p.argv ? { args: p.argv } : {}),
              ...(p.shell !== undefined ? { cmd: p.shell } : {}),
              env: p.env,
              ...(p.cwd !== undefined ? { cwd: p.cwd } : {}),
              pty: p.pty,
            })),
        },
      }),
    startProcess: async (call) => {
      const stream = await procs(call).start(startRequest(call.body as StartBody), call.signal);
      return streamEvents(stream, call, logger);
    },
    connectProcess: (call) => streamEvents(procs(call).connect(pidOf(call)), call, logger),
    processInput: async (call) => {
      const data = Buffer.from((call.body as { data: string }).data, 'base64');
      await procs(call).sendInput(pidOf(call), data);
      return { status: 204 };
    },
    closeProcessInput: async (call) => {
      await procs(call).closeInput(pidOf(call));
      return { status: 204 };
    },
    signalProcess: async (call) => {
      await procs(call).signal(pidOf(call), (call.body as { signal: ProcessSignal }).signal);
      return { status: 204 };
    },
    resizeProcess: async (call) => {
      const { cols, rows } = call.body as { cols: number; rows: number };
      await procs(call).resize(pidOf(call), cols, rows);
      return { status: 204 };
    },
  };
}

/** Until the response can take more (or is gone). */
function writable(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.on('drain', done).on('close', done);
  });
}

async function streamEvents(
  stream: ProcessStream,
  { res, signal, params, requestId }: Call,
  logger: Logger,
): Promise<{ streamed: true }> {
  const events = stream.events[Symbol.asyncIterator]();
  // The client going away ends this stream only (the reader detaches; the process goes on).
  const leave = (): void => void events.return?.();
  signal.addEventListener('abort', leave, { once: true });
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/x-ndjson; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.flushHeaders();
  try {
    for (;;) {
      const next = await events.next();
      if (next.done || signal.aborted) break;
      if (!res.write(`${JSON.stringify(eventJson(next.value))}\n`) && !signal.aborted) {
        await writable(res);
      }
      if (next.value.type === 'end') break;
    }
  } catch (err) {
    const log = logger.child({ sandbox_id: params.id, request_id: requestId, pid: stream.pid });
    const { body: e } = errorBody(err, requestId, log);
    log.warn('process event stream failed after its 200', { code: e.code, error: e.error });
    if (!signal.aborted) res.write(`${JSON.stringify({ type: 'error', error: e.error, code: e.code })}\n`);
  } finally {
    signal.removeEventListener('abort', leave);
    void events.return?.();
  }
  res.end();
  return { streamed: true };
}
