// A QEMU this process did not spawn: one that outlived the daemon that started it, found again
// from its run dir (or a build's staging dir). It is not our child, so Node reports no exit:
// liveness is read from /proc/<pid>/stat (Node has no pidfd). The pid is taken as ours only
// while it still runs from `dir` (its command line names it) and keeps the start time it had
// when adopted, so a reused pid is never signalled. It stops like a spawned one
// (`QemuHandle.dispose`).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../lib/log.js';
import { silentLogger } from '../lib/log.js';
import { processUsesDir, readProcStat } from '../host/proc-stat.js';
import { QemuHandle } from './qemu-handle.js';

/** How often a wait for an adopted QEMU's end looks at /proc. */
const POLL_MS = 20;

export class AdoptedQemu extends QemuHandle {
  protected readonly logger: Logger;
  readonly #startTime: string;

  private constructor(
    readonly pid: number,
    /** The run dir (or a prefix of it) QEMU's command line must name. */
    readonly dir: string,
    startTime: string,
    logger: Logger,
  ) {
    super();
    this.#startTime = startTime;
    this.logger = logger;
  }

  /**
   * Adopt the process `pid` if it is alive and runs from `dir`; undefined if it does not (gone,
   * or the pid now names some other process).
   */
  static async adopt(pid: number, dir: string, opts: { logger?: Logger } = {}): Promise<AdoptedQemu | undefined> {
    const before = await readProcStat(pid);
    if (!before || !(await processUsesDir(pid, dir))) return undefined;
    const after = await readProcStat(pid);
    // The cmdline was read between the two stats: same start time, same process.
    if (!after || after.startTime !== before.startTime) return undefined;
    return new AdoptedQemu(pid, dir, before.startTime, opts.logger ?? silentLogger);
  }

  /** Alive (not a zombie) and still the process adopted. */
  async alive(): Promise<boolean> {
    const stat = await readProcStat(this.pid);
    return stat !== undefined && stat.startTime === this.#startTime && stat.state !== 'Z' && stat.state !== 'X';
  }

  protected async stillOurs(): Promise<boolean> {
    return (await this.alive()) && (await processUsesDir(this.pid, this.dir));
  }

  protected async goneWithin(ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    for (;;) {
      if (!(await this.alive())) return true;
      if (Date.now() >= end) return false;
      await sleep(POLL_MS);
    }
  }
}

/**
 * Stop the QEMU `pid` if it still runs from `dir`, without its monitor (an orphan found at
 * start-up, or one that could not be re-attached): SIGTERM, then SIGKILL. Resolves once gone.
 */
export async function stopAdoptedQemu(pid: number, dir: string, opts: { logger?: Logger } = {}): Promise<void> {
  await (await AdoptedQemu.adopt(pid, dir, opts))?.dispose({ graceMs: 1000 });
}
