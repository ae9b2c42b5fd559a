// One QEMU process, however we came to hold it: spawned by this process (`QemuProcess`, our
// child: Node reports its exit) or re-adopted after a daemon restart (`AdoptedQemu`: not our
// child, its end is read from /proc). Both stop through the one sequence below, behind one
// memoized `dispose()`: a graceful step (QMP `quit`), then SIGTERM, then SIGKILL, each bounded.
// Every caller awaits the same promise, so none returns while QEMU still runs (a second
// `kill()` that returned early let its caller remove a run dir under a live QEMU).
// Signals to QEMU are sent from src/vmm only, and only through this file.
import type { Logger } from '../lib/log.js';

export interface DisposeOptions {
  /** Asks QEMU to exit on its own first (usually QMP `quit`); its failure only skips the wait. */
  graceful?: () => Promise<unknown>;
  /** Bound of the graceful step and of the SIGTERM wait; default 2000. */
  graceMs?: number;
}

/** How long to wait after SIGKILL before saying so in the log (and waiting on). */
const KILL_WAIT_MS = 5000;

export abstract class QemuHandle {
  abstract readonly pid: number;
  protected abstract readonly logger: Logger;
  #disposed: Promise<void> | undefined;

  /** Resolves true once the process is gone, false if it is still there after `ms`. */
  protected abstract goneWithin(ms: number): Promise<boolean>;

  /**
   * Whether `pid` still names the process this handle holds. Checked before every signal:
   * a reused pid must never make us signal a stranger.
   */
  protected abstract stillOurs(): Promise<boolean>;

  /**
   * Stop QEMU and resolve once it is gone. Idempotent and memoized: the first call's options
   * choose the sequence; every later or concurrent call awaits that same stop.
   */
  dispose(opts: DisposeOptions = {}): Promise<void> {
    this.#disposed ??= this.#stop(opts);
    return this.#disposed;
  }

  async #stop(opts: DisposeOptions): Promise<void> {
    const graceMs = opts.graceMs ?? 2000;
    if (await this.goneWithin(0)) return;
    if (opts.graceful) {
      // A failed quit (QMP already closed, QEMU busy) is no error: SIGTERM follows.
      await Promise.race([opts.graceful().catch(() => undefined), delay(graceMs)]);
      if (await this.goneWithin(graceMs)) return;
    }
    await this.#send('SIGTERM');
    if (await this.goneWithin(graceMs)) return;
    this.logger.warn('qemu ignored SIGTERM; sending SIGKILL', { pid: this.pid });
    await this.#send('SIGKILL');
    while (!(await this.goneWithin(KILL_WAIT_MS)))
      this.logger.warn('qemu still there after SIGKILL (uninterruptible sleep?); waiting', { pid: this.pid });
  }

  async #send(sig: NodeJS.Signals): Promise<void> {
    if (!(await this.stillOurs())) return;
    signalGroup(this.pid, sig);
  }
}

/** Signal a detached QEMU's process group (it leads its own), falling back to the pid alone. */
function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // ESRCH: it exited between the check and the signal, which is what we wanted.
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
