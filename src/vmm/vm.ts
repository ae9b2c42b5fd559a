// A running QEMU microVM: its process, its QMP connection and the operations forkd needs
// (boot, pause, resume, save device state, restore, kill). Paths and permissions are the
// caller's (core) business; this module only drives QEMU.
import { setTimeout as sleep } from 'node:timers/promises';
import { ForkdError, errnoOf } from '../lib/errors.js';
import { deadlineSignal, throwIfAborted } from '../lib/deadline.js';
import type { Logger } from '../lib/log.js';
import { silentLogger } from '../lib/log.js';
import { qemuArgs, type QemuSpec } from './qemu-args.js';
import { QemuProcess } from './qemu-process.js';
import { QmpClient } from './qmp.js';
import { openMigrationSink } from './migration-sink.js';

export interface StartOptions {
  spec: QemuSpec;
  uid?: number;
  gid?: number;
  migrationFd?: number;
  oomScoreAdj?: number;
  wrapper?: string[];
  logger?: Logger;
  timeoutMs?: number;
}

export class Vm {
  readonly process: QemuProcess;
  readonly qmp: QmpClient;
  readonly spec: QemuSpec;
  #disposed: Promise<void> | undefined;

  private constructor(proc: QemuProcess, qmp: QmpClient, spec: QemuSpec) {
    this.process = proc;
    this.qmp = qmp;
    this.spec = spec;
  }

  get pid(): number {
    return this.process.pid;
  }

  /** Start QEMU and connect QMP. With spec.incoming the guest waits for a migration stream. */
  static async start(opts: StartOptions): Promise<Vm> {
    const logger = opts.logger ?? silentLogger;
    const proc = await QemuProcess.spawn({
      binary: opts.spec.binary,
      args: qemuArgs(opts.spec),
      consoleLog: opts.spec.consoleLog,
      logger,
      ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
      ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
      ...(opts.migrationFd !== undefined ? { migrationFd: opts.migrationFd } : {}),
      ...(opts.oomScoreAdj !== undefined ? { oomScoreAdj: opts.oomScoreAdj } : {}),
      // The namespace wrapper enters first; the launcher then execs QEMU inside it.
      wrapper: [...(opts.wrapper ?? []), ...(opts.spec.launcher ?? [])],
    });
    try {
      const qmp = await connectQmpWhenReady(proc, opts.spec.qmpSocket, opts.timeoutMs ?? 10_000);
      return new Vm(proc, qmp, opts.spec);
    } catch (err) {
      await proc.dispose({ graceMs: 500 });
      throw await withDiagnostics(proc, err, 'QEMU did not come up');
    }
  }

  /**
   * Restore device state from the migration fd 3 passed at start, then run the guest. The
   * parent was paused when saved, so the restored VM stays paused until `cont`.
   */
  async restoreFromFd3(timeoutMs = 20_000): Promise<void> {
    try {
      await this.loadIncomingFd3({ ignoreShared: true, timeoutMs, what: 'restore' });
      await this.qmp.execute('cont');
    } catch (err) {
      throw await withDiagnostics(this.process, err, 'restore failed');
    }
  }

  /**
   * Load the migration stream on fd 3 (QEMU started with `incoming`); the guest stays paused.
   * `ignoreShared`: RAM is already in the shared memory file (a snapshot's vmstate) rather than
   * in the stream (a BRANCH stream carries every page).
   */
  async loadIncomingFd3(opts: { ignoreShared: boolean; timeoutMs: number; what: string }): Promise<void> {
    const migrated = this.qmp.waitForEvent('MIGRATION', {
      timeoutMs: opts.timeoutMs,
      filter: (e) => e.data?.status === 'completed' || e.data?.status === 'failed',
    });
    migrated.catch(() => undefined); // awaited below; this keeps an early failure from being an unhandled rejection meanwhile
    // `events` makes QEMU report MIGRATION status changes, so no polling is needed.
    await this.qmp.execute('migrate-set-capabilities', {
      capabilities: [
        { capability: 'x-ignore-shared', state: opts.ignoreShared },
        { capability: 'events', state: true },
      ],
    });
    // A restored child does not announce itself on the network (gratuitous ARP rounds, whose
    // link notifications every child would run: measured ~1,500 translated blocks under TCG).
    // Its backend is new anyway; peers learn its MAC from its first packet.
    if (opts.ignoreShared) await this.qmp.execute('migrate-set-parameters', { 'announce-rounds': 0 });
    await this.qmp.execute('migrate-incoming', { uri: 'fd:3' });
    // An incoming failure can also make QEMU 7.2 exit, so race the process exit too.
    const event = await Promise.race([
      migrated,
      this.process.waitExit().then((e) => {
        throw new ForkdError('vmm_error', `QEMU exited during ${opts.what} (code ${e.code}, signal ${e.signal})`);
      }),
    ]);
    if (event.data?.status !== 'completed')
      throw new ForkdError('vmm_error', `incoming migration failed (${opts.what})`);
  }

  async pause(): Promise<void> {
    await this.qmp.execute('stop');
  }

  async resume(): Promise<void> {
    await this.qmp.execute('cont');
  }

  /**
   * Save device state only (RAM is the share=on file) into `outPath`. The guest must be
   * paused. QEMU connects to a socket in its run dir that forkd listens on.
   */
  async saveDeviceState(
    outPath: string,
    opts: { socketPath: string; owner?: { uid: number; gid: number }; timeoutMs?: number },
  ): Promise<number> {
    const signal = deadlineSignal(opts.timeoutMs ?? 60_000);
    const sink = await openMigrationSink({
      socketPath: opts.socketPath,
      outPath,
      ...(opts.owner ? { owner: opts.owner } : {}),
    });
    try {
      await this.qmp.execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'x-ignore-shared', state: true }],
      });
      await this.qmp.execute('migrate', { uri: sink.uri });
      await this.waitMigrationDone(signal);
      return await sink.done;
    } finally {
      await sink.close();
    }
  }

  async waitMigrationDone(signal: AbortSignal): Promise<Record<string, unknown>> {
    for (;;) {
      throwIfAborted(signal, 'migration');
      const info = await this.qmp.execute<Record<string, unknown>>('query-migrate');
      const status = info.status;
      if (status === 'completed') return info;
      if (status === 'failed' || status === 'cancelled') {
        const reason = typeof info['error-desc'] === 'string' ? info['error-desc'] : String(status);
        throw new ForkdError('vmm_error', `migration ${String(status)}: ${reason}`);
      }
      await sleep(2);
    }
  }

  /**
   * Stop QEMU (QMP quit, then SIGTERM, then SIGKILL) and close QMP. Idempotent: every caller,
   * concurrent or later, resolves only once QEMU is gone (see QemuHandle.dispose).
   */
  dispose(graceMs = 2000): Promise<void> {
    this.#disposed ??= (async () => {
      await this.process.dispose({
        graceful: async () => {
          if (!this.qmp.closed) await this.qmp.execute('quit', undefined, { timeoutMs: graceMs });
        },
        graceMs,
      });
      this.qmp.close();
    })();
    return this.#disposed;
  }
}

async function connectQmpWhenReady(proc: QemuProcess, path: string, timeoutMs: number): Promise<QmpClient> {
  const signal = deadlineSignal(timeoutMs);
  for (;;) {
    if (proc.exited) throw new ForkdError('vmm_error', `QEMU exited at start (code ${proc.exited.code})`);
    try {
      return await QmpClient.connect(path, { signal });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      const code = errnoOf(cause);
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw err;
    }
    throwIfAborted(signal, 'waiting for the QMP socket');
    await sleep(3);
  }
}

export async function withDiagnostics(proc: QemuProcess, err: unknown, what: string): Promise<ForkdError> {
  const diag = await proc.diagnostics();
  const base = err instanceof ForkdError ? err : new ForkdError('vmm_error', String(err), { cause: err });
  const message = `${what}: ${base.message}${diag ? `\n${diag}` : ''}`;
  return new ForkdError(base.code, message, { cause: err });
}
