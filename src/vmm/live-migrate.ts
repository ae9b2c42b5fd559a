// Migration of a running VM into a file, for BRANCH (QEMU-NOTES "BRANCH a running child").
// Two ways to copy, chosen by the caller:
// - `pre-copy` (KVM): RAM is copied while the guest runs, the guest stops only for the final
//   stop-and-copy (bounded by `downtime-limit`).
// - `stop-and-copy` (TCG): the guest is paused for the whole copy. QEMU 7.2's TCG dirty
//   tracking loses guest writes between pre-copy passes (our reading, not proven in QEMU's
//   source: a bitmap sync clears a page's dirty bit but leaves the vCPU's fast-path TLB entry
//   for it, so later writes through that entry go unseen). Measured here: 2 of 6 pre-copy BRANCHes of a guest busy writing memory
//   gave snapshots whose every child oopsed in the scheduler (rb_erase) within a second; 0 of
//   13 with the source paused (test/integration/branch.test.ts keeps such a guest).
// Either way the source runs again (`cont`) once the stream is complete. The pause is measured
// from QEMU's own STOP and RESUME event timestamps. x-ignore-shared is OFF: a child maps its
// parent's memory.bin privately, so every page must travel in the stream for the result to
// stand on its own.
import { setTimeout as sleep } from 'node:timers/promises';
import { ForkdError, messageOf } from '../lib/errors.js';
import { deadlineSignal } from '../lib/deadline.js';
import { openMigrationSink } from './migration-sink.js';
import type { QmpClient, QmpEvent } from './qmp.js';

/**
 * QEMU's default cap (128 MiB/s) is meant for links shared with other traffic; this stream goes
 * to a local file and the source may be paused while it flows (measured: 192 MiB took 1.43 s at
 * the default), so it is lifted.
 */
const STREAM_BANDWIDTH_BYTES_PER_SEC = 64 * 1024 ** 3;
export type BranchCopy = 'pre-copy' | 'stop-and-copy';

/** The copy that gives a consistent stream on this accelerator (see the header). */
export function branchCopyFor(accel: 'kvm' | 'tcg'): BranchCopy {
  return accel === 'kvm' ? 'pre-copy' : 'stop-and-copy';
}

/** query-migrate between MIGRATION events, in case one is missed. */
const FALLBACK_POLL_MS = 50;

export interface LiveMigrateResult {
  /** STOP -> RESUME of the source, from QEMU's event timestamps. */
  pauseMs: number;
  copy: BranchCopy;
  /** Stream bytes written. */
  bytes: number;
  /** From the `migrate` command until the source runs again. */
  totalMs: number;
}

export async function liveMigrateToFile(
  qmp: QmpClient,
  opts: {
    socketPath: string;
    outPath: string;
    owner?: { uid: number; gid: number };
    /** pre-copy: the final pause QEMU aims for (`downtime-limit`); ignored by stop-and-copy. */
    downtimeMs: number;
    copy: BranchCopy;
    timeoutMs?: number;
  },
): Promise<LiveMigrateResult> {
  const t0 = performance.now();
  const signal = deadlineSignal(opts.timeoutMs ?? 600_000);
  let stop: QmpEvent | undefined;
  let resume: QmpEvent | undefined;
  // The guest is paused from STOP until our `cont`: react to QEMU's MIGRATION event rather
  // than a timer, so the pause holds as little of our own latency as possible.
  let wake: (() => void) | undefined;
  let migrationEvents = 0;
  let completedEvent = false;
  const onEvent = (e: QmpEvent): void => {
    if (e.event === 'STOP' && !stop) stop = e;
    else if (e.event === 'RESUME' && stop && !resume) resume = e;
    else if (e.event === 'MIGRATION') {
      migrationEvents++;
      if (e.data?.status === 'completed') completedEvent = true;
      wake?.();
    }
  };
  qmp.events.on('event', onEvent);
  const sink = await openMigrationSink({
    socketPath: opts.socketPath,
    outPath: opts.outPath,
    ...(opts.owner ? { owner: opts.owner } : {}),
  });
  let migrated = false;
  try {
    await qmp.execute('migrate-set-capabilities', {
      capabilities: [
        { capability: 'x-ignore-shared', state: false },
        { capability: 'events', state: true },
      ],
    });
    await qmp.execute('migrate-set-parameters', {
      'downtime-limit': opts.downtimeMs,
      'max-bandwidth': STREAM_BANDWIDTH_BYTES_PER_SEC,
    });
    if (opts.copy === 'stop-and-copy') await qmp.execute('stop');
    await qmp.execute('migrate', { uri: sink.uri });
    migrated = true;
    for (;;) {
      if (signal.aborted) throw new ForkdError('timeout', 'live migration did not complete before its deadline');
      if (completedEvent) break;
      const seen = migrationEvents;
      const info = await qmp.execute<Record<string, unknown>>('query-migrate');
      if (info.status === 'completed') break;
      if (info.status === 'failed' || info.status === 'cancelled') {
        const reason = typeof info['error-desc'] === 'string' ? info['error-desc'] : String(info.status);
        throw new ForkdError('vmm_error', `live migration ${String(info.status)}: ${reason}`);
      }
      if (migrationEvents !== seen) continue; // an event came during the query: look again
      // Woken by the next MIGRATION event; the poll is only a fallback.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, FALLBACK_POLL_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
    // `completed` is set a moment before the run state leaves finish-migrate, and `cont` in
    // that window fails ("Migration is not finalized yet"): resume once it is postmigrate.
    await ensureRunning(qmp);
    const bytes = await sink.done;
    if (!resume) await waitUntil(() => resume !== undefined, 5000);
    if (!stop || !resume) throw new ForkdError('vmm_error', 'live migration: no STOP/RESUME events from QEMU');
    return {
      pauseMs: (resume.timestampUs - stop.timestampUs) / 1000,
      copy: opts.copy,
      bytes,
      totalMs: performance.now() - t0,
    };
  } catch (err) {
    // Whatever failed, the source must run again.
    if (migrated) await qmp.execute('migrate_cancel').catch(() => undefined);
    await ensureRunning(qmp).catch((e: unknown) => {
      throw new ForkdError('vmm_error', `${messageOf(err)}; and the source could not be resumed: ${messageOf(e)}`, {
        cause: err,
      });
    });
    throw err;
  } finally {
    qmp.events.off('event', onEvent);
    await sink.close();
  }
}

/** Resume a VM whose migration ended (or failed): waits out finish-migrate, then `cont`. */
export async function ensureRunning(qmp: QmpClient): Promise<void> {
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    const s = await qmp.execute<{ running: boolean; status: string }>('query-status');
    if (s.running) return;
    if (s.status === 'postmigrate' || s.status === 'paused') {
      await qmp.execute('cont');
      return;
    }
    await sleep(1); // finish-migrate: wait for it to settle (the source is paused meanwhile)
  }
  throw new ForkdError('vmm_error', 'source did not leave its migration state');
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond() && Date.now() < end) await sleep(2);
}
