// A QEMU this process spawned (a re-adopted one is `AdoptedQemu`; both stop through
// `QemuHandle.dispose`). QEMU starts already as the unprivileged VM user (spawn uid/gid:
// `-runas` would need setuid, which `elevateprivileges=deny` kills), detached in its own
// process group, with exactly the file descriptors we pass (stdio plus an optional migration
// fd 3; Node opens everything else close-on-exec).
import { spawn, type ChildProcess } from 'node:child_process';
import { open, readFile, writeFile } from 'node:fs/promises';
import { ForkdError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { silentLogger } from '../lib/log.js';
import { QemuHandle } from './qemu-handle.js';

const STDERR_TAIL_BYTES = 8192;

export interface SpawnQemuOptions {
  binary: string;
  args: string[];
  uid?: number;
  gid?: number;
  /** Becomes fd 3 in QEMU (e.g. a vmstate file for `migrate-incoming fd:3`). */
  migrationFd?: number;
  consoleLog: string;
  /** Raised so the kernel's OOM killer picks a sandbox before the daemon (security doc). */
  oomScoreAdj?: number;
  logger?: Logger;
  /** Extra argv prefix, e.g. ["ip", "netns", "exec", NS] for a namespaced child. */
  wrapper?: string[];
}

export class QemuProcess extends QemuHandle {
  readonly pid: number;
  readonly #consoleLog: string;
  protected readonly logger: Logger;
  #stderrTail = '';
  #exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(child: ChildProcess, consoleLog: string, logger: Logger) {
    super();
    if (child.pid === undefined) throw new ForkdError('vmm_error', 'QEMU did not start (no pid)');
    this.pid = child.pid;
    this.#consoleLog = consoleLog;
    this.logger = logger;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.#stderrTail = (this.#stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    });
    this.#exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exited = { code, signal };
        resolve(this.#exited);
      });
    });
  }

  static async spawn(opts: SpawnQemuOptions): Promise<QemuProcess> {
    const [cmd, ...argv] = [...(opts.wrapper ?? []), opts.binary, ...opts.args];
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'ignore', 'pipe'];
    if (opts.migrationFd !== undefined) stdio.push(opts.migrationFd);
    const child = spawn(cmd!, argv, {
      stdio,
      detached: true,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
      ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) =>
        reject(new ForkdError('vmm_error', `cannot start ${opts.binary}: ${err.message}`, { cause: err })),
      );
    });
    const proc = new QemuProcess(child, opts.consoleLog, opts.logger ?? silentLogger);
    if (opts.oomScoreAdj !== undefined) {
      // Not fatal (the sandbox runs either way), but the OOM killer may then pick the daemon first.
      await writeFile(`/proc/${proc.pid}/oom_score_adj`, String(opts.oomScoreAdj)).catch((err: unknown) =>
        proc.logger.warn('cannot set oom_score_adj of qemu', { pid: proc.pid, error: String(err) }),
      );
    }
    return proc;
  }

  get exited(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.#exited;
  }

  /** Resolves when QEMU exits. */
  waitExit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.#exit;
  }

  stderrTail(): string {
    return this.#stderrTail.trim();
  }

  async consoleTail(bytes = 4096): Promise<string> {
    try {
      const fh = await open(this.#consoleLog, 'r');
      try {
        const { size } = await fh.stat();
        const start = Math.max(0, size - bytes);
        const buf = Buffer.alloc(size - start);
        await fh.read(buf, 0, buf.length, start);
        return stripAnsi(buf.toString('utf8')).trim();
      } finally {
        await fh.close();
      }
    } catch {
      // no log (yet): an error message then carries no tail
      return '';
    }
  }

  /** A message tail for errors: QEMU's stderr and the guest console (STYLE rule 4). */
  async diagnostics(): Promise<string> {
    const parts: string[] = [];
    const stderr = this.stderrTail();
    if (stderr) parts.push(`qemu stderr:\n${indent(stderr)}`);
    const consoleText = await this.consoleTail(2048);
    if (consoleText) parts.push(`guest console (tail):\n${indent(consoleText)}`);
    if (this.#exited) parts.push(`qemu exited: code=${this.#exited.code} signal=${this.#exited.signal}`);
    return parts.join('\n');
  }

  protected stillOurs(): Promise<boolean> {
    // Once Node has seen the exit the pid is reaped and may name another process.
    return Promise.resolve(this.#exited === undefined);
  }

  protected async goneWithin(ms: number): Promise<boolean> {
    if (this.#exited) return true;
    if (ms <= 0) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const result = await Promise.race([this.#exit.then(() => true as const), timeout]);
    clearTimeout(timer);
    return result;
  }
}

/** Drop terminal escape sequences (ESC [ ... letter) from console output. */
function stripAnsi(text: string): string {
  const esc = String.fromCharCode(27);
  return text
    .split(esc)
    .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;?]*[A-Za-z]/, '')))
    .join('');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

/** Read a process's status fields (Uid, Seccomp, VmRSS...) from /proc; undefined if gone. */
export async function procStatus(pid: number): Promise<Record<string, string> | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8');
    const out: Record<string, string> = {};
    for (const line of text.split('\n')) {
      const i = line.indexOf(':');
      if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
    }
    return out;
  } catch {
    // the process is gone
    return undefined;
  }
}
