// The agent's state (what outlives a host connection: background processes, the JS context,
// the Python worker, the sandbox id) and the op -> handler table. Transport-agnostic:
// `serve` takes the bytes of one host connection and a write function, so the same core
// runs on the guest's virtio-serial char device and on a Unix socket in host-side tests.
import type { Duplex } from 'node:stream';
import {
  AGENT_PROTOCOL_VERSION,
  DEFAULT_EVAL_TIMEOUT_MS,
  DEFAULT_EXEC_TIMEOUT_MS,
  FORKD_VERSION,
} from '../protocol/index.js';
import { JsEvaluator } from './eval-js.js';
import { startChild } from './exec.js';
import { listOp, mkdirOp, readFileOp, removeOp, statOp } from './files.js';
import { writeFileOp } from './files-write.js';
import { applyIdentity } from './identity.js';
import { GuestCtl } from './guestctl.js';
import { silentGuestLog, type GuestLog } from './log.js';
import { ProcessTable } from './processes.js';
import { PythonWorker } from './python.js';
import { Session, type Handlers } from './session.js';
import { FrameWriter, type WriteFn } from './writer.js';

export interface AgentOptions {
  /** forkd-guestctl; default /usr/lib/forkd/forkd-guestctl. */
  guestctlPath?: string;
  /** Default /proc/sys/kernel/hostname. */
  hostnameFile?: string;
  /** Python interpreter for eval; default `python3` from PATH. */
  python?: string;
  log?: GuestLog;
}

export const DEFAULT_GUESTCTL = '/usr/lib/forkd/forkd-guestctl';

export interface GuestAgent {
  /** Serves one host connection until `input` ends; never rejects. */
  serve(input: AsyncIterable<Uint8Array>, write: WriteFn): Promise<void>;
  /** Serves a socket (tests, or any stream transport). */
  serveStream(stream: Duplex): Promise<void>;
  /** Kills background processes and the Python worker. */
  close(): void;
}

export function createAgent(opts: AgentOptions = {}): GuestAgent {
  const log = opts.log ?? silentGuestLog;
  const startedAt = performance.now();
  const processes = new ProcessTable();
  const js = new JsEvaluator();
  const python = new PythonWorker(opts.python ?? 'python3', log);
  const paths = { hostnameFile: opts.hostnameFile ?? '/proc/sys/kernel/hostname' };
  // Resident from the start, so snapshots carry it and children need no fork for identity.
  const guestctl = new GuestCtl(opts.guestctlPath ?? DEFAULT_GUESTCTL, log);
  guestctl.start();
  let sandboxId: string | null = null;

  const handlers: Handlers = {
    hello: () => Promise.resolve({ protocolVersion: AGENT_PROTOCOL_VERSION, agentVersion: FORKD_VERSION }),
    ping: () => Promise.resolve({ uptimeMs: performance.now() - startedAt, agentVersion: FORKD_VERSION, sandboxId }),
    identity: async (p) => {
      const { clockStepMs } = await applyIdentity(p, guestctl, paths);
      js.reseed();
      await python.reseed();
      sandboxId = p.sandboxId;
      log.info('identity applied', { sandboxId, hostname: p.hostname, clockStepMs });
      return { sandboxId: p.sandboxId, hostname: p.hostname, clockStepMs };
    },
    exec: async (p, ctx) => {
      if (p.background) return processes.start(p);
      const child = await startChild(p, (kind, chunk) => ctx.stream(kind, chunk), {
        timeoutMs: p.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
        signal: ctx.signal,
      });
      const exit = await child.done;
      ctx.signal.throwIfAborted();
      return { ...exit, truncated: false };
    },
    kill: (p) => Promise.resolve().then(() => processes.kill(p.pid, p.signal)),
    wait: (p, ctx) => processes.wait(p.pid, p.timeoutMs, ctx),
    eval: (p, ctx) => {
      const timeoutMs = p.timeoutMs ?? DEFAULT_EVAL_TIMEOUT_MS;
      if (p.language === 'python') return python.evaluate(p.code, timeoutMs, ctx.signal);
      return js.evaluate(p.code, timeoutMs);
    },
    warm: async (p) => {
      js.warm();
      const modules = p.pythonPreload;
      return { js: true, python: modules === undefined ? null : await python.warm(modules) };
    },
    'files.read': (p, ctx) => readFileOp(p.path, ctx),
    'files.write': (p, ctx) => writeFileOp(p, ctx),
    'files.list': (p) => listOp(p.path),
    'files.stat': (p) => statOp(p.path),
    'files.remove': (p) => removeOp(p.path, p.recursive ?? false),
    'files.mkdir': (p) => mkdirOp(p.path, p.parents ?? false),
  };

  const serve = (input: AsyncIterable<Uint8Array>, write: WriteFn): Promise<void> =>
    new Session(handlers, new FrameWriter(write, log), log).run(input);

  return {
    serve,
    serveStream: (stream) =>
      serve(
        stream,
        (bytes) => new Promise((resolve, reject) => void stream.write(bytes, (err) => (err ? reject(err) : resolve()))),
      ),
    close: () => {
      processes.killAll();
      python.close();
      guestctl.close();
    },
  };
}
