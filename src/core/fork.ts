// Fork N children of a snapshot in parallel and report how it went: readiness timings
// (first / last child ready, per-child p50 / p90), failures, and memory cost.
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { messageOf } from '../lib/errors.js';
import type { CoreContext } from './context.js';
import type { IsolationSpec } from './isolation.js';
import type { ParkedVmm } from './parked-vmms.js';
import { restoreChild, type LoadedSnapshot, type Sandbox } from './sandbox.js';
import { loadSnapshot } from './snapshot-store.js';

/**
 * Restores in flight at once: one per core (at least 2). A restoring child is CPU-bound until
 * its agent answers (under TCG every code path is translated afresh in each QEMU); starting all
 * N at once makes them progress in lockstep, so the first child is ready only when the last is.
 * Measured at N=50 on 2 cores (bench/results/fork.md): windows of 2, 4, 8 and 50 finish within
 * the run-to-run noise of each other, while a child's own wait grows with the window (p50 131,
 * 282, 501, 2947 ms); so the smallest window that keeps every core busy.
 */
export function defaultRestoreConcurrency(): number {
  return Math.max(2, availableParallelism());
}

/**
 * Admits at most `limit` restores at once; the rest wait in FIFO order. The one limit on
 * restores in flight: the local CLI makes one per fork, the daemon one for the whole host
 * (shared by every POST /v1/sandboxes), so no second window is stacked on it.
 */
export class RestoreWindow {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(readonly limit: number = defaultRestoreConcurrency()) {
    this.#free = limit;
  }
  async use<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

export interface ForkResult {
  children: Sandbox[];
  failures: string[];
  wallMs: number;
  firstReadyMs: number | undefined;
  lastReadyMs: number | undefined;
  readyP50Ms: number | undefined;
  readyP90Ms: number | undefined;
}

export async function forkChildren(
  ctx: CoreContext,
  opts: {
    tag: string;
    n: number;
    readyTimeoutMs?: number;
    concurrency?: number;
    /** Parked VMMs of this snapshot to restore into (child `i` takes `parked[i]`); the rest start QEMU. */
    parked?: readonly ParkedVmm[];
    onReady?: (child: Sandbox, done: number) => void;
  },
): Promise<ForkResult> {
  const snap = await loadSnapshot(ctx, opts.tag);
  const t0 = performance.now();
  const readyAt: number[] = [];
  let done = 0;
  const settled = await restoreMany(ctx, snap, {
    n: opts.n,
    window: new RestoreWindow(opts.concurrency),
    ...(opts.parked ? { parked: (i: number) => opts.parked?.[i] } : {}),
    ...(opts.readyTimeoutMs !== undefined ? { readyTimeoutMs: opts.readyTimeoutMs } : {}),
    onReady: (child) => {
      readyAt.push(performance.now() - t0);
      opts.onReady?.(child, ++done);
    },
  });
  const wallMs = performance.now() - t0;
  const children = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failures = settled.flatMap((s) => (s.status === 'rejected' ? [messageOf(s.reason)] : []));
  const perChild = children.map((c) => c.timings.readyMs).sort((a, b) => a - b);
  readyAt.sort((a, b) => a - b);
  return {
    children,
    failures,
    wallMs,
    firstReadyMs: readyAt[0],
    lastReadyMs: readyAt[readyAt.length - 1],
    readyP50Ms: percentile(perChild, 0.5),
    readyP90Ms: percentile(perChild, 0.9),
  };
}

export interface RestoreManyOptions {
  n: number;
  /** The limit on restores in flight: the daemon's host-wide one, or one for this call. */
  window: RestoreWindow;
  /** The sandbox id of child `i` (the daemon has inserted rows for them); default a new id. */
  id?: (i: number) => string;
  isolation?: IsolationSpec | undefined;
  /** Child `i`'s parked VMM, when it has one (its id is then child `i`'s id). */
  parked?: (i: number) => ParkedVmm | undefined;
  readyTimeoutMs?: number;
  /** Child `i` is ready; a throw here fails that child's result like a failed restore. */
  onReady?: (child: Sandbox, i: number) => void;
}

/**
 * The one fan-out of N restores of a snapshot, shared by the local CLI (forkChildren) and the
 * daemon (SandboxManager.create): results in index order, never rejects.
 */
export function restoreMany(
  ctx: CoreContext,
  snap: LoadedSnapshot,
  opts: RestoreManyOptions,
): Promise<PromiseSettledResult<Sandbox>[]> {
  // Every child is queued at once; the window alone decides how many restore at a time.
  return mapWithConcurrency(opts.n, opts.n, async (i) => {
    const parked = opts.parked?.(i);
    const child = await opts.window.use(() =>
      restoreChild(ctx, snap, {
        ...(parked ? { parked } : {}),
        ...(opts.id ? { id: opts.id(i) } : {}),
        ...(opts.readyTimeoutMs !== undefined ? { readyTimeoutMs: opts.readyTimeoutMs } : {}),
        ...(opts.isolation ? { isolation: opts.isolation } : {}),
      }),
    );
    opts.onReady?.(child, i);
    return child;
  });
}

/** Run `fn` n times with at most `limit` in flight; results in start order, never rejects. */
export async function mapWithConcurrency<T>(
  n: number,
  limit: number,
  fn: (i: number) => Promise<T>,
): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = new Array<PromiseSettledResult<T>>(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await fn(i) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, n)) }, worker));
  return results;
}

/** Nearest-rank percentile of a sorted array. */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank];
}

/** `percentile` of values in any order; NaN when there are none (for figures in tables). */
export function percentileOf(values: readonly number[], p: number): number {
  return (
    percentile(
      [...values].sort((a, b) => a - b),
      p,
    ) ?? NaN
  );
}

/** Dispose many sandboxes concurrently; never throws. */
export async function disposeAll(children: readonly Sandbox[]): Promise<void> {
  await Promise.allSettled(children.map((c) => c.dispose()));
}
