// The daemon's sandboxes: create (restore N children of a snapshot), TTL expiry, death watch,
// kill, and state in SQLite. Unlike the local CLI, whose children live only as long as the
// command, these live until deleted, expired or dead, and survive a daemon restart
// (reconcile.ts re-adopts them). Lifecycle:
//   creating -> running -> stopping -> (row deleted) | stopped (expired)
//   creating | running -> failed (restore failed, QEMU died)
import { performance } from 'node:perf_hooks';
import { ForkdError, messageOf } from '../../lib/errors.js';
import { assertSandboxId, newSandboxId } from '../../lib/ids.js';
import { assertTag } from '../../lib/tag.js';
import { TTL_SECS_RANGE } from '../../lib/contract.js';
import type { CoreContext } from '../context.js';
import { RestoreWindow, restoreMany } from '../fork.js';
import type { ParkedVmms } from '../parked-vmms.js';
import { validateIsolationOptions, type IsolationOptions, type IsolationSpec } from '../isolation.js';
import { assertFeatures, featuresAsked, type HostCapabilities } from '../../host/capabilities.js';
import type { EgressPolicy } from '../../host/nftables.js';
import { loadSnapshot } from '../snapshot-store.js';
import type { SandboxRow, SandboxState, StateStore } from '../state/store.js';
import type { ControllerHooks } from './events.js';
import { liveFromSandbox, type LiveSandbox } from './live.js';

/** Marks a `stopping` row whose DELETE was under way (reconcile finishes it by removing the row). */
export const DELETING = 'deleting';

/** Retry-After on a spawn refused by --max-sandboxes. */
export const SPAWN_RETRY_AFTER_SECS = 5;

export interface CreateSandboxesRequest {
  snapshotTag: string;
  n: number;
  ttlSecs?: number | undefined;
  memoryLimitMiB?: number | undefined;
  /** Fraction of CPUs (0.5 = half of one): the cgroup's CPU quota. */
  cpuLimit?: number | undefined;
  /** Tasks (QEMU's threads) the sandbox's cgroup may hold. */
  pidsLimit?: number | undefined;
  perChildNetns?: boolean | undefined;
  /** Needs perChildNetns; unchecked input (validated here before anything happens). */
  egress?: unknown;
  metadata?: Record<string, string> | undefined;
  requestId?: string | undefined;
}

export interface SandboxManagerOptions {
  maxSandboxes: number;
  /** Policy of a namespace whose spawn names none (`--default-egress`, resolved by lib/config.ts). */
  defaultEgress: EgressPolicy;
  /** What the start-up probe found this daemon can isolate with; a spawn asking for more is refused. */
  capabilities?: HostCapabilities | undefined;
  /** Put this node key into every new id (lib/ids.ts), so a gateway routes by id alone. */
  nodeKey?: string | undefined;
  /** Parked VMMs (`--parked-vmms`) a spawn without isolation takes before starting QEMUs. */
  parked?: ParkedVmms | undefined;
}

export class SandboxManager {
  readonly #live = new Map<string, LiveSandbox>();
  /** Restores in flight across all requests (a restoring child is CPU-bound; see fork.ts). */
  readonly #restores = new RestoreWindow();
  readonly #ttl = new Map<string, NodeJS.Timeout>();
  #closing = false;

  constructor(
    private readonly ctx: CoreContext,
    private readonly store: StateStore,
    private readonly hooks: ControllerHooks,
    private readonly opts: SandboxManagerOptions,
  ) {}

  get(id: string): SandboxRow {
    const row = this.store.getSandbox(assertSandboxId(id));
    if (!row) throw new ForkdError('not_found', `sandbox ${id} not found; list sandboxes with GET /v1/sandboxes`);
    return row;
  }

  list(filter: { snapshotTag?: string; state?: SandboxState } = {}): SandboxRow[] {
    if (filter.snapshotTag !== undefined) assertTag(filter.snapshotTag, 'snapshot tag');
    return this.store.listSandboxes(filter);
  }

  /** The live handle of a running sandbox: 404 if unknown, 409 `invalid_state` otherwise. */
  running(id: string): LiveSandbox {
    const row = this.get(id);
    const live = this.#live.get(row.id);
    if (row.state !== 'running' || !live) {
      throw new ForkdError(
        'invalid_state',
        `sandbox ${id} is ${row.state}, not running${row.reason ? ` (${row.reason})` : ''}; start a new one with POST /v1/sandboxes`,
        { details: { state: row.state, expected: 'running' } },
      );
    }
    return live;
  }

  /** Restores `n` children; resolves when every one is ready or failed (each row says which). */
  async create(req: CreateSandboxesRequest): Promise<SandboxRow[]> {
    if (this.#closing) throw new ForkdError('unavailable', 'the daemon is shutting down; retry against its successor');
    const tag = assertTag(req.snapshotTag, 'snapshot tag');
    // Limits and egress are checked before any lookup, row or host change: a bad one is a 400.
    const isolation = isolationFor(req, this.opts.defaultEgress);
    // ...and so is a feature this daemon cannot provide (503 feature_unavailable, not a 500 later).
    if (isolation) assertFeatures(featuresAsked(isolation), this.opts.capabilities);
    if (this.store.getSnapshot(tag)?.status === 'writing') {
      throw new ForkdError(
        'invalid_state',
        `snapshot ${tag} is still being built; retry when GET /v1/snapshots/${tag} says ready`,
        { details: { status: 'writing' } },
      );
    }
    const snap = await loadSnapshot(this.ctx, tag).catch((err: unknown) => {
      // A failed build or BRANCH left a row and no dir: that is a state, not an absence.
      const row = this.store.getSnapshot(tag);
      if (row?.status === 'failed' && err instanceof ForkdError && err.code === 'not_found') {
        throw new ForkdError(
          'invalid_state',
          `snapshot ${tag} failed${row.error ? ` (${row.error.split('\n')[0]})` : ''}; DELETE it and build or branch it again`,
          { details: { status: 'failed' } },
        );
      }
      throw err;
    });
    const active = this.store.countActive();
    if (active + req.n > this.opts.maxSandboxes) {
      throw new ForkdError(
        'busy',
        `${req.n} more sandbox(es) would exceed --max-sandboxes ${this.opts.maxSandboxes} (${active} active); delete some first`,
        // A hint for clients that retry on their own: room appears only when sandboxes end.
        { details: { retryAfterSecs: SPAWN_RETRY_AFTER_SECS } },
      );
    }
    // No await between the count above and these inserts: concurrent creates cannot both pass.
    const t0 = performance.now();
    const now = new Date();
    // Parked VMMs first (their ids become the sandboxes'); the rest start their QEMU now.
    const parked = isolation ? [] : (this.opts.parked?.take(snap, req.n) ?? []);
    const ids = Array.from({ length: req.n }, (_, i) => parked[i]?.started.id ?? newSandboxId(this.opts.nodeKey));
    this.store.insertSandboxes(
      ids.map((id) => ({
        id,
        snapshotTag: tag,
        state: 'creating',
        pid: null,
        accel: this.ctx.facts.accel.accel,
        createdAt: now.toISOString(),
        updatedAt: now.toISOString(),
        expiresAt: req.ttlSecs === undefined ? null : new Date(now.getTime() + req.ttlSecs * 1000).toISOString(),
        memoryLimitMiB: isolation?.memoryMiB ?? null,
        cpuLimit: isolation?.cpuLimit ?? null,
        pidsLimit: isolation?.pidsLimit ?? null,
        perChildNetns: isolation?.network !== undefined,
        egress: isolation?.network?.egress ?? null,
        metadata: req.metadata ?? {},
        reason: null,
      })),
    );
    const settled = await restoreMany(this.ctx, snap, {
      n: req.n,
      id: (i) => ids[i]!,
      isolation,
      parked: (i) => parked[i],
      window: this.#restores,
      onReady: (sandbox, i) => {
        const id = ids[i]!;
        this.hooks.spawned({ spawnMs: performance.now() - t0, restoreMs: sandbox.timings.restoreMs });
        this.store.updateSandbox(id, { state: 'running', pid: sandbox.pid });
        this.#adopt(liveFromSandbox(sandbox, this.ctx.logger.child({ sandbox: id })), req.requestId);
        this.hooks.event({ event: 'sandbox.created', sandboxId: id, snapshotTag: tag, requestId: req.requestId });
      },
    });
    // The snapshot is hot: park the next children's QEMUs now that these have restored.
    if (!isolation) this.opts.parked?.noteSpawn(snap);
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') return;
      const id = ids[i]!;
      const reason = `restore failed: ${messageOf(s.reason).split('\n')[0]}`;
      this.store.updateSandbox(id, { state: 'failed', reason });
      this.hooks.event({ event: 'sandbox.failed', sandboxId: id, snapshotTag: tag, reason, requestId: req.requestId });
      this.ctx.logger.warn('sandbox restore failed', { sandbox: id, error: messageOf(s.reason) });
    });
    if (settled.every((s) => s.status === 'rejected')) {
      const first: unknown = (settled[0] as PromiseRejectedResult).reason;
      throw first instanceof ForkdError
        ? first
        : new ForkdError('vmm_error', `no sandbox of ${tag} could be restored: ${messageOf(first)}`, { cause: first });
    }
    return ids.map((id) => this.get(id));
  }

  /**
   * Sets a running sandbox's lifetime to `ttlSecs` from now (E2B's setTimeout): the new
   * expires_at goes to SQLite first, so a daemon restarted after this call re-arms the same
   * deadline when it re-adopts the sandbox, then the timer is re-armed.
   */
  setTtl(id: string, ttlSecs: number): SandboxRow {
    if (!Number.isInteger(ttlSecs) || ttlSecs < TTL_SECS_RANGE.min || ttlSecs > TTL_SECS_RANGE.max) {
      throw new ForkdError(
        'invalid_argument',
        `ttl_secs must be an integer ${TTL_SECS_RANGE.min}..${TTL_SECS_RANGE.max}, got ${String(ttlSecs)}`,
      );
    }
    const row = this.get(id);
    if (row.state !== 'running' || !this.#live.has(row.id)) {
      throw new ForkdError(
        'invalid_state',
        `sandbox ${id} is ${row.state}, not running; only a running sandbox's lifetime can be changed`,
        { details: { state: row.state, expected: 'running' } },
      );
    }
    const expiresAt = new Date(Date.now() + ttlSecs * 1000);
    this.store.updateSandbox(row.id, { expiresAt: expiresAt.toISOString() });
    clearTimeout(this.#ttl.get(row.id));
    this.#armTtl(row.id, expiresAt.getTime() - Date.now());
    return this.get(row.id);
  }

  /** Stops a sandbox (any state but `creating`) and forgets it. */
  async delete(id: string, requestId?: string): Promise<void> {
    const row = this.get(id);
    if (row.state === 'creating') {
      throw new ForkdError('invalid_state', `sandbox ${id} is still creating; delete it once it is running`, {
        details: { state: row.state },
      });
    }
    if (row.state === 'running' || row.state === 'stopping') {
      this.store.updateSandbox(row.id, { state: 'stopping', reason: DELETING });
      await this.#stop(row.id);
      this.hooks.event({ event: 'sandbox.killed', sandboxId: row.id, snapshotTag: row.snapshotTag, requestId });
    }
    this.store.deleteSandbox(row.id);
  }

  /** Take over a live sandbox: death watch and TTL timer. */
  #adopt(live: LiveSandbox, requestId?: string): void {
    if (this.#closing) return live.detach(); // shutting down: the next daemon adopts it
    this.#live.set(live.id, live);
    void live.exited.then((reason) => this.#onExit(live.id, reason, requestId));
    const expiresAt = this.store.getSandbox(live.id)?.expiresAt;
    if (expiresAt) this.#armTtl(live.id, Date.parse(expiresAt) - Date.now());
  }

  /** Used by reconciliation for a sandbox re-attached after a restart. */
  adoptRunning(live: LiveSandbox): void {
    this.#adopt(live);
  }

  #armTtl(id: string, inMs: number): void {
    const timer = setTimeout(() => void this.#expire(id), Math.max(0, inMs));
    timer.unref();
    this.#ttl.set(id, timer);
  }

  async #expire(id: string): Promise<void> {
    this.#ttl.delete(id);
    const row = this.store.getSandbox(id);
    if (row?.state !== 'running') return;
    this.store.updateSandbox(id, { state: 'stopping', reason: 'expired' });
    await this.#stop(id);
    this.store.updateSandbox(id, { state: 'stopped', reason: 'expired (ttl_secs elapsed)' });
    this.hooks.event({ event: 'sandbox.expired', sandboxId: id, snapshotTag: row.snapshotTag });
  }

  async #stop(id: string): Promise<void> {
    clearTimeout(this.#ttl.get(id));
    this.#ttl.delete(id);
    const live = this.#live.get(id);
    this.#live.delete(id);
    if (live) await live.kill();
  }

  /** QEMU went away. Unless we were stopping it, the sandbox failed: clean up and record why. */
  async #onExit(id: string, reason: string, requestId?: string): Promise<void> {
    if (this.#closing) return;
    const row = this.store.getSandbox(id);
    const live = this.#live.get(id);
    if (!row || row.state !== 'running' || !live) return;
    this.#live.delete(id);
    clearTimeout(this.#ttl.get(id));
    this.#ttl.delete(id);
    this.store.updateSandbox(id, { state: 'failed', reason });
    await live
      .kill()
      .catch((err: unknown) => this.ctx.logger.warn('cleanup failed', { sandbox: id, error: messageOf(err) }));
    this.ctx.logger.warn('sandbox failed', { sandbox: id, reason });
    this.hooks.event({ event: 'sandbox.failed', sandboxId: id, snapshotTag: row.snapshotTag, reason, requestId });
  }

  /** Daemon shutdown: kill every sandbox, or leave them running for the next daemon to adopt. */
  async close(opts: { kill: boolean }): Promise<void> {
    this.#closing = true;
    for (const t of this.#ttl.values()) clearTimeout(t);
    this.#ttl.clear();
    const lives = [...this.#live.values()];
    this.#live.clear();
    if (!opts.kill) {
      for (const l of lives) l.detach();
      return;
    }
    await Promise.allSettled(
      lives.map(async (l) => {
        await l.kill();
        this.store.deleteSandbox(l.id);
        this.hooks.event({ event: 'sandbox.killed', sandboxId: l.id, reason: 'daemon exit (--kill-on-exit)' });
      }),
    );
  }

  get liveCount(): number {
    return this.#live.size;
  }
}

/**
 * The isolation a create request asks for, validated: a cgroup for memory/cpu/pids limits, a
 * network namespace for per_child_netns with the spawn's egress policy or else `defaultEgress`.
 * Nothing asked, nothing set up (undefined): the sandbox keeps the unconnected NIC and no
 * cgroup of its own. Throws `invalid_argument` for an out-of-range limit, a bad policy or CIDR,
 * or an egress policy without a namespace (there would be no network to apply it to).
 */
export function isolationFor(
  req: Pick<CreateSandboxesRequest, 'memoryLimitMiB' | 'cpuLimit' | 'pidsLimit' | 'perChildNetns' | 'egress'>,
  defaultEgress: EgressPolicy,
): IsolationSpec | undefined {
  if (req.egress !== undefined && !req.perChildNetns) {
    throw new ForkdError(
      'invalid_argument',
      'egress needs per_child_netns: true; without its own network namespace a sandbox has no network to apply an egress policy to',
    );
  }
  const opts: IsolationOptions = {
    ...(req.memoryLimitMiB !== undefined ? { memoryMiB: req.memoryLimitMiB } : {}),
    ...(req.cpuLimit !== undefined ? { cpuLimit: req.cpuLimit } : {}),
    ...(req.pidsLimit !== undefined ? { pidsLimit: req.pidsLimit } : {}),
    ...(req.perChildNetns ? { network: { egress: req.egress } } : {}),
  };
  if (Object.keys(opts).length === 0) return undefined;
  return validateIsolationOptions(opts, defaultEgress);
}
