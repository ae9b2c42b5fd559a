// The daemon's view of snapshots: the files on disk (snapshot.json is the truth for what a
// snapshot is) joined with SQLite rows for builds in progress or failed, plus lineage
// (ancestors and dependents through `parentTag`). Builds run in the background: the API
// answers 202 with status `writing` and the row turns `ready` or `failed`.
import { ForkdError, messageOf } from '../../lib/errors.js';
import { assertTag } from '../../lib/tag.js';
import { readImageManifest } from '../../image/manifest.js';
import type { CoreContext } from '../context.js';
import { liveRunRecords } from '../run-dir.js';
import { createSnapshot } from '../snapshot-create.js';
import type { SnapshotMeta } from '../snapshot-meta.js';
import { listSnapshots, removeSnapshot } from '../snapshot-store.js';
import type { SnapshotStatus, StateStore } from '../state/store.js';
import type { ControllerHooks } from './events.js';
import { ancestorsOf } from '../lineage.js';
import { BRANCH_DISK_MARGIN_BYTES } from '../branch.js';
import { formatBytes, freeSpace } from '../../host/disk.js';

/** Parents booting at once: each is a cold boot, CPU-bound for seconds. */
export const MAX_SNAPSHOT_BUILDS = 2;

export interface SnapshotView {
  tag: string;
  status: SnapshotStatus;
  createdAt: string;
  error: string | null;
  meta: SnapshotMeta | undefined;
  logicalBytes: number;
  diskBytes: number;
  parentTag: string | null;
  branchedFrom: string | null;
  /** Root first, direct parent last. */
  ancestors: string[];
  /** Direct children (snapshots whose parentTag is this tag), sorted. */
  dependents: string[];
  /** Active sandboxes (daemon or local CLI) restored from it. */
  inUseBy: string[];
}

export interface CreateSnapshotRequest {
  tag: string;
  image: string;
  memMiB: number;
  vcpus: number;
  warmup: string[];
  bootWaitSecs: number;
  requestId?: string | undefined;
}

export class SnapshotService {
  readonly #builds = new Map<string, Promise<void>>();

  constructor(
    private readonly ctx: CoreContext,
    private readonly store: StateStore,
    private readonly hooks: ControllerHooks,
    /** Ids of the daemon's active sandboxes per snapshot tag. */
    private readonly activeUsers: (tag: string) => string[],
  ) {}

  async list(): Promise<SnapshotView[]> {
    // Rows first, then the disk: a build or BRANCH publishes its dir before its row turns
    // `ready`, so in this order a snapshot finishing meanwhile is seen in one place or the
    // other, never in neither (the other order briefly answered 404 for it).
    const rows = new Map(this.store.listSnapshotRows().map((r) => [r.tag, r]));
    const disk = await listSnapshots(this.ctx.paths);
    const parentOf = new Map(disk.map((d) => [d.tag, d.meta?.parentTag ?? null]));
    const views: SnapshotView[] = disk.map((d) => {
      const row = rows.get(d.tag);
      return {
        tag: d.tag,
        status: d.meta ? 'ready' : 'failed',
        createdAt: d.meta?.createdAt ?? row?.createdAt ?? d.modifiedAt.toISOString(),
        error: d.error ?? null,
        meta: d.meta,
        logicalBytes: d.logicalBytes,
        diskBytes: d.diskBytes,
        parentTag: d.meta?.parentTag ?? null,
        branchedFrom: d.meta?.branchedFrom ?? null,
        ancestors: ancestorsOf(d.tag, parentOf),
        dependents: disk.filter((o) => o.meta?.parentTag === d.tag).map((o) => o.tag),
        inUseBy: [...new Set([...this.activeUsers(d.tag), ...d.inUseBy])].sort(),
      };
    });
    // Builds in progress or failed have no published dir (a build publishes by rename).
    for (const row of rows.values()) {
      if (parentOf.has(row.tag) || row.status === 'ready') continue;
      views.push({
        tag: row.tag,
        status: row.status,
        createdAt: row.createdAt,
        error: row.error,
        meta: undefined,
        logicalBytes: 0,
        diskBytes: 0,
        parentTag: null,
        branchedFrom: null,
        ancestors: [],
        dependents: [],
        inUseBy: [],
      });
    }
    return views.sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
  }

  async get(tag: string): Promise<SnapshotView> {
    assertTag(tag, 'snapshot tag');
    const view = (await this.list()).find((v) => v.tag === tag);
    if (!view) throw new ForkdError('not_found', `snapshot ${tag} not found; list snapshots with GET /v1/snapshots`);
    return view;
  }

  /** Validates and starts a build; resolves once it is under way (status `writing`). */
  async startCreate(req: CreateSnapshotRequest): Promise<SnapshotView> {
    const tag = assertTag(req.tag, 'snapshot tag');
    assertTag(req.image, 'image name');
    const existing = (await this.list()).find((v) => v.tag === tag);
    if (existing && existing.status !== 'failed') {
      throw new ForkdError(
        'already_exists',
        `snapshot ${tag} already exists (${existing.status}); pick another tag or DELETE /v1/snapshots/${tag} first`,
      );
    }
    if (existing?.meta) {
      throw new ForkdError('already_exists', `snapshot ${tag} exists on disk but is damaged; DELETE it first`);
    }
    await readImageManifest(this.ctx.config.dataDir, req.image);
    if (this.#builds.has(tag)) throw new ForkdError('already_exists', `snapshot ${tag} is already being built`);
    if (this.#builds.size >= MAX_SNAPSHOT_BUILDS) {
      throw new ForkdError('busy', `${MAX_SNAPSHOT_BUILDS} snapshots are already being built; retry when one is done`);
    }
    await this.#assertRoom(tag, req.memMiB);
    this.store.upsertSnapshot(tag, 'writing');
    const build = this.#build(tag, req).finally(() => this.#builds.delete(tag));
    this.#builds.set(tag, build);
    return this.get(tag);
  }

  /**
   * The parent's memory.bin is written in the data dir as the guest touches its RAM; on a
   * file system without room for it the build was admitted and could fail only later, once
   * the guest had touched more RAM than fits. As BRANCH does: room for the RAM plus a margin, or 507
   * before any row, dir or QEMU exists. The disk can still fill during the build; that ends
   * the build `failed` with its staging dir removed.
   */
  async #assertRoom(tag: string, memMiB: number): Promise<void> {
    const needed = memMiB * 1024 * 1024 + BRANCH_DISK_MARGIN_BYTES;
    const free = await freeSpace(this.ctx.config.dataDir);
    if (free.freeBytes < needed) {
      throw new ForkdError(
        'insufficient_storage',
        `snapshot ${tag} needs ${formatBytes(needed)} free in ${free.measuredPath} (its ${memMiB} MiB of RAM plus a margin); ${formatBytes(free.freeBytes)} is free`,
      );
    }
  }

  async #build(tag: string, req: CreateSnapshotRequest): Promise<void> {
    try {
      await createSnapshot(this.ctx, {
        tag,
        image: req.image,
        memMiB: req.memMiB,
        vcpus: req.vcpus,
        warmup: req.warmup,
        bootTimeoutMs: req.bootWaitSecs * 1000,
      });
      this.store.upsertSnapshot(tag, 'ready');
      this.hooks.event({ event: 'snapshot.created', snapshotTag: tag, requestId: req.requestId });
    } catch (err) {
      const reason = messageOf(err).slice(0, 4000);
      this.store.upsertSnapshot(tag, 'failed', reason);
      this.ctx.logger.warn('snapshot build failed', { snapshot: tag, error: reason });
      this.hooks.event({
        event: 'snapshot.failed',
        snapshotTag: tag,
        reason: reason.split('\n')[0],
        requestId: req.requestId,
      });
    }
  }

  /**
   * Deletes a snapshot. Refused while sandboxes use it (409) or while other snapshots descend
   * from it, unless `cascade` (delete the whole subtree) or `force` (orphan the children).
   */
  async delete(tag: string, opts: { cascade: boolean; force: boolean; requestId?: string }): Promise<string[]> {
    assertTag(tag, 'snapshot tag');
    if (opts.cascade && opts.force) {
      throw new ForkdError(
        'invalid_argument',
        'cascade=true and force=true exclude each other: cascade deletes the dependents, force orphans them; pick one',
      );
    }
    const views = await this.list();
    const byTag = new Map(views.map((v) => [v.tag, v]));
    const view = byTag.get(tag);
    if (!view) throw new ForkdError('not_found', `snapshot ${tag} not found; list snapshots with GET /v1/snapshots`);
    if (view.status === 'writing' || this.#builds.has(tag)) {
      throw new ForkdError(
        'invalid_state',
        `snapshot ${tag} is still being built; delete it once it is ready or failed`,
        {
          details: { status: 'writing' },
        },
      );
    }
    const subtree = opts.cascade ? descendants(tag, views) : [];
    if (view.dependents.length > 0 && !opts.cascade && !opts.force) {
      throw new ForkdError(
        'conflict',
        `snapshot ${tag} is the parent of ${view.dependents.join(', ')}; add ?cascade=true to delete them too, or ?force=true to orphan them (they will no longer restore)`,
      );
    }
    const doomed = [...subtree.reverse(), tag];
    const live = await liveRunRecords(this.ctx.paths);
    for (const t of doomed) {
      const users = new Set([
        ...(byTag.get(t)?.inUseBy ?? []),
        ...live.filter((r) => r.snapshotTag === t).map((r) => r.id),
      ]);
      if (users.size > 0) {
        throw new ForkdError(
          'conflict',
          `snapshot ${t} is in use by ${users.size} sandbox(es): ${[...users].sort().join(', ')}; delete them first`,
        );
      }
    }
    for (const t of doomed) {
      // A failed build left no dir: only its row goes.
      await removeSnapshot(this.ctx.paths, t).catch((err: unknown) => {
        if (!(err instanceof ForkdError && err.code === 'not_found')) throw err;
      });
      this.store.deleteSnapshot(t);
      this.hooks.event({ event: 'snapshot.deleted', snapshotTag: t, requestId: opts.requestId });
    }
    return doomed;
  }

  /** Builds in flight (shutdown waits for them, bounded). */
  idle(): Promise<unknown> {
    return Promise.allSettled([...this.#builds.values()]);
  }

  get buildsInFlight(): number {
    return this.#builds.size;
  }
}

/** Every snapshot descending from `tag`, parents before children (cycle-safe). */
function descendants(tag: string, views: SnapshotView[]): string[] {
  const out: string[] = [];
  const seen = new Set([tag]);
  const visit = (t: string): void => {
    for (const v of views) {
      if (v.parentTag !== t || seen.has(v.tag)) continue;
      seen.add(v.tag);
      out.push(v.tag);
      visit(v.tag);
    }
  };
  visit(tag);
  return out;
}
