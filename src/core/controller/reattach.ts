// Re-attach to a sandbox whose QEMU survived a daemon restart: run/<id>/{sandbox.json,
// qmp.sock, agent.sock}. QEMU's QMP and agent chardevs are `server=on`, so they accept a new
// client once the old daemon's connections closed, and the guest agent treats a host
// disconnect as "wait for the next host". The process is not our child any more, so its death
// is seen by polling /proc/<pid> (Node has no pidfd) and, faster, by the QMP socket closing.
import { join } from 'node:path';
import { ForkdError, messageOf } from '../../lib/errors.js';
import { AgentClient } from '../../agent/client.js';
import { AdoptedQemu } from '../../vmm/adopted-qemu.js';
import { QmpClient } from '../../vmm/qmp.js';
import { ensureRunning } from '../../vmm/live-migrate.js';
import type { CoreContext } from '../context.js';
import { RUN_FILES } from '../paths.js';
import { readRunRecord } from '../run-dir.js';
import { releaseSandboxHost } from '../sandbox-release.js';
import type { LiveSandbox } from './live.js';
import type { Logger } from '../../lib/log.js';
import { SandboxProcesses } from '../processes.js';
import { processUsesDir } from '../../host/proc-stat.js';

const WATCH_INTERVAL_MS = 500;

/** The pid recorded in run/<id>/sandbox.json, if its process still runs from that dir. */
export async function liveRunPid(ctx: CoreContext, id: string): Promise<number | undefined> {
  const dir = ctx.paths.runDir(id);
  const pid = (await readRunRecord(dir))?.pid;
  return typeof pid === 'number' && (await processUsesDir(pid, dir)) ? pid : undefined;
}

/** Run states a BRANCH's migration leaves a source in (paused before the copy, or done copying). */
const BRANCH_LEFT_STATES = new Set(['paused', 'finish-migrate', 'postmigrate']);

export async function reattachSandbox(
  ctx: CoreContext,
  id: string,
  opts: { timeoutMs?: number; network?: boolean } = {},
): Promise<LiveSandbox> {
  const dir = ctx.paths.runDir(id);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const pid = await liveRunPid(ctx, id);
  const logger = ctx.logger.child({ sandbox: id });
  const qemu = pid === undefined ? undefined : await AdoptedQemu.adopt(pid, dir, { logger });
  if (qemu === undefined) throw new ForkdError('not_found', `sandbox ${id}: no live QEMU runs from ${dir}`);
  let qmp: QmpClient | undefined;
  try {
    qmp = await QmpClient.connect(join(dir, RUN_FILES.qmp), { timeoutMs });
    const status = await qmp.execute<{ running: boolean; status: string }>('query-status');
    if (!status.running && BRANCH_LEFT_STATES.has(status.status)) {
      // Only a BRANCH pauses a sandbox (under TCG for its whole copy), and its previous daemon
      // died before resuming it: the stream went with that daemon, so cancel what is left of
      // the migration and let the guest run on.
      await qmp.execute('migrate_cancel').catch(() => undefined); // none in flight is fine
      await ensureRunning(qmp);
      logger.warn('resumed a sandbox a BRANCH had paused when the previous daemon stopped', { was: status.status });
    } else if (!status.running) {
      throw new ForkdError('invalid_state', `sandbox ${id}: QEMU is ${status.status}, not running`);
    }
    const agent = await AgentClient.connect(join(dir, RUN_FILES.agent), { timeoutMs, logger });
    await agent.ping({ timeoutMs });
    return new AdoptedSandbox(ctx, id, qemu, qmp, agent, opts.network ?? false, logger);
  } catch (err) {
    qmp?.close();
    throw new ForkdError('vmm_error', `sandbox ${id}: cannot re-attach to QEMU ${qemu.pid}: ${messageOf(err)}`, {
      cause: err,
    });
  }
}

class AdoptedSandbox implements LiveSandbox {
  readonly exited: Promise<string>;
  readonly processes: SandboxProcesses;
  #resolveExit!: (reason: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #killed: Promise<void> | undefined;

  constructor(
    private readonly ctx: CoreContext,
    readonly id: string,
    /** Stopped through the same `dispose()` as a QEMU this daemon spawned. */
    private readonly qemu: AdoptedQemu,
    readonly qmp: QmpClient,
    readonly agent: AgentClient,
    /** Whether it runs in its own network namespace (its cgroup is found by id either way). */
    private readonly network: boolean,
    logger: Logger,
  ) {
    this.processes = new SandboxProcesses(agent, logger);
    this.exited = new Promise((resolve) => (this.#resolveExit = resolve));
    this.#timer = setInterval(() => void this.#check(), WATCH_INTERVAL_MS);
    this.#timer.unref();
    // QEMU closing its end of QMP is the earliest sign of its death.
    qmp.events.once('close', () => void this.#check());
  }

  get pid(): number {
    return this.qemu.pid;
  }

  async #check(): Promise<void> {
    if (await this.qemu.alive()) return;
    this.#stopWatching();
    const { oom } = await releaseSandboxHost(this.ctx, this.id, { network: this.network });
    this.#resolveExit(oom ? 'oom' : 'qemu exited (not a child of this daemon: exit status unknown)');
  }

  #stopWatching(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  kill(): Promise<void> {
    this.#killed ??= (async () => {
      this.#stopWatching();
      this.processes.dispose('the sandbox was released');
      this.agent.close();
      await this.qemu.dispose({
        graceful: async () => {
          if (!this.qmp.closed) await this.qmp.execute('quit', undefined, { timeoutMs: 1000 });
        },
        graceMs: 1000,
      });
      this.qmp.close();
      await releaseSandboxHost(this.ctx, this.id, { network: this.network });
      this.#resolveExit('killed');
    })();
    return this.#killed;
  }

  detach(): void {
    this.#stopWatching();
    this.processes.dispose('the daemon stopped watching this sandbox');
    this.agent.close();
    this.qmp.close();
  }
}
