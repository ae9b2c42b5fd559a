// The in-sandbox `process.Process` service (envd's process.proto, JSON codec) over the
// sandbox's interactive-process registry. The SDK runs every command as
// `/bin/bash -l -c CMD` and a PTY as `/bin/bash -i -l`; forkd images need not have bash, so
// `/bin/bash` runs bash where the image has it and /bin/sh otherwise. The sandbox's envVars
// (given at create) are under every command's own envs.
import type { LiveSandbox } from '../../core/controller/live.js';
import { ForkdError } from '../../lib/errors.js';
import { RpcError, type RpcCall, type StreamSender } from './connect-protocol.js';
import { optBool, optBytes, optInt, optObject, optString, optStringArray, optStringMap } from './input.js';
import { processesOf, type ProcessEvent, type ProcessInfo, type ProcessSignal, type Processes } from './processes.js';

/** `exec /bin/bash "$@"` where there is one, else /bin/sh with the same arguments. */
const BASH_OR_SH = 'if [ -x /bin/bash ]; then exec /bin/bash "$@"; fi; exec /bin/sh "$@"';
const MAX_PTY_SIDE = 1000; // MAX_PTY_DIMENSION of the agent protocol
const MIN_KEEPALIVE_SECS = 1;
const MAX_KEEPALIVE_SECS = 3600;

export interface ProcessContext {
  live: LiveSandbox;
  /** The sandbox's envVars. */
  env: Record<string, string>;
}

type Obj = Record<string, unknown>;

export const PROCESS_UNARY: Record<string, (ctx: ProcessContext, call: RpcCall) => Promise<unknown>> = {
  List: (ctx) => Promise.resolve({ processes: processesOf(ctx.live).list().map(processInfoJson) }),
  SendInput: async (ctx, { message }) => {
    const p = processesOf(ctx.live);
    const input = optObject(message, 'input') ?? {};
    const data = optBytes(input, 'stdin') ?? optBytes(input, 'pty');
    if (data === undefined) throw new RpcError('invalid_argument', 'input needs stdin or pty bytes');
    await p.sendInput(selectPid(p, message), data);
    return {};
  },
  SendSignal: async (ctx, { message }) => {
    const p = processesOf(ctx.live);
    await p.signal(selectPid(p, message), signalOf(message.signal));
    return {};
  },
  CloseStdin: async (ctx, { message }) => {
    const p = processesOf(ctx.live);
    await p.closeInput(selectPid(p, message));
    return {};
  },
  Update: async (ctx, { message }) => {
    const p = processesOf(ctx.live);
    const size = ptySize(message);
    if (!size) throw new RpcError('invalid_argument', 'update needs pty.size {cols, rows}');
    await p.resize(selectPid(p, message), size.cols, size.rows);
    return {};
  },
};

export const PROCESS_STREAMS: Record<
  string,
  (ctx: ProcessContext, call: RpcCall, send: StreamSender) => Promise<void>
> = {
  Start: async (ctx, call, send) => {
    const m = call.message;
    const config = optObject(m, 'process');
    const cmd = config && optString(config, 'cmd');
    if (!config || !cmd) throw new RpcError('invalid_argument', 'process.cmd is required');
    const args = optStringArray(config, 'args') ?? [];
    const cwd = optString(config, 'cwd');
    const pty = ptySize(m);
    const tag = optString(m, 'tag', 256);
    const stdin = optBool(m, 'stdin');
    const stream = await processesOf(ctx.live).start(
      {
        argv: cmd === '/bin/bash' ? ['/bin/sh', '-c', BASH_OR_SH, 'sh', ...args] : [cmd, ...args],
        env: { ...ctx.env, ...(optStringMap(config, 'envs') ?? {}) },
        ...(cwd ? { cwd } : {}),
        ...(pty ? { pty } : {}),
        ...(stdin ? { stdin: true } : {}),
        ...(tag ? { tag } : {}),
        timeoutMs: call.timeoutMs ?? 0,
      },
      call.signal,
    );
    await relay(stream.events, call, send);
  },
  Connect: async (ctx, call, send) => {
    const p = processesOf(ctx.live);
    const pid = selectPid(p, call.message);
    const stream = p.connect(pid);
    await send({ event: { start: { pid } } });
    await relay(stream.events, call, send);
  },
};

/** Process events -> envd's ProcessEvent messages, with keepalives while the process is quiet. */
async function relay(events: AsyncIterable<ProcessEvent>, call: RpcCall, send: StreamSender): Promise<void> {
  const interval = Number(call.headers['keepalive-ping-interval']);
  const timer =
    interval >= MIN_KEEPALIVE_SECS
      ? setInterval(
          () => void send({ event: { keepalive: {} } }).catch(() => undefined), // the client left: the loop ends
          Math.min(interval, MAX_KEEPALIVE_SECS) * 1000,
        )
      : undefined;
  timer?.unref();
  // The client going away detaches this consumer at once (even while the process is quiet);
  // the process keeps running for whoever connects next.
  const it = events[Symbol.asyncIterator]();
  const detach = (): void => void it.return?.();
  call.signal.addEventListener('abort', detach, { once: true });
  try {
    for (;;) {
      const next = await it.next();
      if (next.done || call.signal.aborted) return;
      const e = next.value;
      if (e.type === 'start') await send({ event: { start: { pid: e.pid } } });
      else if (e.type === 'end') {
        if (e.timedOut) throw new RpcError('deadline_exceeded', 'the command ran past its timeout and was killed');
        await send({ event: { end: endJson(e) } });
        return;
      } else await send({ event: { data: { [e.type]: e.data.toString('base64') } } });
    }
  } finally {
    clearInterval(timer);
    call.signal.removeEventListener('abort', detach);
    detach();
  }
}

/** envd's end event: a signalled process has exit code -1, exited false, status "signal: killed". */
function endJson(e: Extract<ProcessEvent, { type: 'end' }>): Obj {
  const status =
    e.exitCode !== null ? `exit status ${e.exitCode}` : e.signal ? `signal: ${signalText(e.signal)}` : 'unknown';
  return {
    exitCode: e.exitCode ?? -1,
    exited: e.exitCode !== null,
    status,
    ...(e.error ? { error: e.error } : {}),
  };
}

const SIGNAL_TEXT: Record<string, string> = {
  SIGKILL: 'killed',
  SIGTERM: 'terminated',
  SIGINT: 'interrupt',
  SIGHUP: 'hangup',
};

function signalText(signal: string): string {
  return Object.hasOwn(SIGNAL_TEXT, signal) ? SIGNAL_TEXT[signal]! : signal;
}

function processInfoJson(p: ProcessInfo): Obj {
  const argv = p.argv ?? ['/bin/sh', '-c', p.shell ?? ''];
  const bash = argv[0] === '/bin/sh' && argv[1] === '-c' && argv[2] === BASH_OR_SH;
  return {
    pid: p.pid,
    ...(p.tag !== undefined ? { tag: p.tag } : {}),
    config: {
      cmd: bash ? '/bin/bash' : argv[0],
      args: bash ? argv.slice(4) : argv.slice(1),
      envs: p.env,
      ...(p.cwd !== undefined ? { cwd: p.cwd } : {}),
    },
  };
}

function selectPid(p: Processes, message: Obj): number {
  const sel = optObject(message, 'process');
  if (!sel) throw new RpcError('invalid_argument', 'process selector (pid or tag) is required');
  const pid = optInt(sel, 'pid', 1, 0x7fffffff);
  if (pid !== undefined) return pid;
  const tag = optString(sel, 'tag', 256);
  if (tag === undefined) throw new RpcError('invalid_argument', 'process selector needs pid or tag');
  const found = p.list().find((i) => i.tag === tag);
  if (!found) throw new ForkdError('not_found', `no process tagged ${JSON.stringify(tag)} in this sandbox`);
  return found.pid;
}

function signalOf(v: unknown): ProcessSignal {
  if (v === 'SIGNAL_SIGKILL' || v === 9) return 'SIGKILL';
  if (v === 'SIGNAL_SIGTERM' || v === 15) return 'SIGTERM';
  throw new RpcError('invalid_argument', 'signal must be SIGNAL_SIGKILL or SIGNAL_SIGTERM');
}

function ptySize(message: Obj): { cols: number; rows: number } | undefined {
  const pty = optObject(message, 'pty');
  if (!pty) return undefined;
  const size = optObject(pty, 'size') ?? {};
  return { cols: optInt(size, 'cols', 1, MAX_PTY_SIDE) ?? 80, rows: optInt(size, 'rows', 1, MAX_PTY_SIDE) ?? 24 };
}
