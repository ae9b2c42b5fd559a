// BRANCH: turn a running sandbox into a new snapshot while it keeps running. Phase 1 (the
// request waits for it): migrate the source into a stream in a staging dir, then resume it;
// under KVM a live pre-copy that pauses the source only for the final stop-and-copy, under TCG
// with the source paused for the whole copy (pre-copy loses writes there: vmm/live-migrate.ts).
// Phase 2 (in the background):
// materialize the stream into memory.bin + vmstate, record digests and lineage, publish the
// dir by rename. The snapshot row is `writing` from admission until `ready` or `failed`.
// Limits (docs/SECURITY, "Concurrency caps"): at most `concurrency` BRANCHes in flight, the
// excess is refused at once (503, never queued); one BRANCH per output tag; free space for the
// source's RAM plus a margin, or 507. A failed BRANCH leaves no dir and a running source.
import { randomBytes } from 'node:crypto';
import { link, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ForkdError, messageOf } from '../lib/errors.js';
import { exists } from '../lib/fsutil.js';
import { assertTag } from '../lib/tag.js';
import { FORKD_VERSION } from '../lib/version.js';
import { formatBytes, freeSpace } from '../host/disk.js';
import { branchCopyFor, liveMigrateToFile } from '../vmm/live-migrate.js';
import { materializeStream } from './branch-materialize.js';
import { publishSnapshot } from './snapshot-publish.js';
import type { CoreContext } from './context.js';
import type { ControllerHooks } from './controller/events.js';
import type { SandboxManager } from './controller/sandboxes.js';
import { SNAPSHOT_FILES } from './paths.js';
import { readSnapshotMeta, type SnapshotMeta } from './snapshot-meta.js';
import type { StateStore } from './state/store.js';

/** Free space demanded beyond the source's RAM (vmstate, snapshot.json, file system slack). */
export const BRANCH_DISK_MARGIN_BYTES = 64 * 1024 * 1024;
export const BRANCH_RETRY_AFTER_SECS = 2;
const STREAM_FILE = 'branch.stream';

export interface BranchRequest {
  sandboxId: string;
  tag?: string | undefined;
  downtimeMs: number;
  requestId?: string | undefined;
}

export interface BranchResult {
  tag: string;
  sandboxId: string;
  /** Source paused (QMP STOP -> RESUME). */
  pauseMs: number;
  /** Request start until the source ran again. */
  liveMs: number;
  /** Migration stream bytes written. */
  bytes: number;
  /** Settles when the snapshot is ready (resolves) or failed (rejects). */
  done: Promise<{ totalMs: number; memoryBytes: number }>;
}

export class BranchService {
  /** Output tags of BRANCHes in flight (admission to ready/failed). */
  readonly #inFlight = new Map<string, Promise<unknown>>();
  /** Per source sandbox: the tail of its live-migration chain (QEMU runs one migration at a time). */
  readonly #sourceChain = new Map<string, Promise<unknown>>();
  #closing = false;

  constructor(
    private readonly ctx: CoreContext,
    private readonly store: StateStore,
    private readonly sandboxes: SandboxManager,
    private readonly hooks: ControllerHooks,
    private readonly opts: { concurrency: number },
  ) {}

  get inFlight(): number {
    return this.#inFlight.size;
  }

  async start(req: BranchRequest): Promise<BranchResult> {
    const t0 = performance.now();
    if (this.#closing) throw new ForkdError('unavailable', 'the daemon is shutting down; retry against its successor');
    const live = this.sandboxes.running(req.sandboxId);
    const row = this.sandboxes.get(req.sandboxId);
    let tag: string;
    if (req.tag === undefined) {
      do tag = await this.#defaultTag(row.id);
      while (this.#inFlight.has(tag));
    } else tag = assertTag(req.tag, 'snapshot tag');
    if (this.#inFlight.has(tag)) {
      throw new ForkdError('already_exists', `snapshot ${tag} is already being branched; pick another tag`);
    }
    if (this.#inFlight.size >= this.opts.concurrency) {
      throw new ForkdError(
        'busy',
        `${this.opts.concurrency} BRANCH operations are in flight (--branch-concurrency); retry in a moment`,
        { details: { retryAfterSecs: BRANCH_RETRY_AFTER_SECS } },
      );
    }
    // Reserve the tag (and a slot) synchronously after the checks: no twin can slip in.
    let release!: () => void;
    this.#inFlight.set(tag, new Promise<void>((r) => (release = r)));
    let published = false;
    let wroteRow = false;
    try {
      const existing = this.store.getSnapshot(tag);
      if ((existing && existing.status !== 'failed') || (await exists(this.ctx.paths.snapshotDir(tag)))) {
        throw new ForkdError(
          'already_exists',
          `snapshot ${tag} already exists; pick another tag or DELETE /v1/snapshots/${tag} first`,
        );
      }
      const sourceDir = this.ctx.paths.snapshotDir(row.snapshotTag);
      const source = await readSnapshotMeta(sourceDir, row.snapshotTag);
      const needed = source.layout.memMiB * 1024 * 1024 + BRANCH_DISK_MARGIN_BYTES;
      const free = await freeSpace(this.ctx.config.dataDir);
      if (free.freeBytes < needed) {
        throw new ForkdError(
          'insufficient_storage',
          `BRANCH of ${row.id} needs ${formatBytes(needed)} free in ${free.measuredPath} (its ${source.layout.memMiB} MiB of RAM plus a margin); ${formatBytes(free.freeBytes)} is free`,
        );
      }
      this.store.upsertSnapshot(tag, 'writing');
      wroteRow = true;
      const staging = this.ctx.paths.snapshotStagingDir(tag, randomBytes(4).toString('hex'));
      await mkdir(staging, { mode: 0o755 });
      const cleanup = (): Promise<void> => rm(staging, { recursive: true, force: true });
      let phase1;
      try {
        const imageFiles = Object.keys(source.files).filter(
          (f) => f !== SNAPSHOT_FILES.memory && f !== SNAPSHOT_FILES.vmstate,
        );
        for (const f of imageFiles) await link(join(sourceDir, f), join(staging, f));
        const streamPath = join(staging, STREAM_FILE);
        const migrated = await this.#serialized(row.id, () =>
          liveMigrateToFile(live.qmp, {
            socketPath: join(this.ctx.paths.runDir(row.id), `branch-${randomBytes(4).toString('hex')}.sock`),
            outPath: streamPath,
            ...(this.ctx.facts.vmUser ? { owner: this.ctx.facts.vmUser } : {}),
            downtimeMs: req.downtimeMs,
            copy: branchCopyFor(this.ctx.facts.accel.accel),
          }),
        );
        phase1 = { migrated, staging, streamPath, imageFiles };
      } catch (err) {
        await cleanup();
        throw err;
      }
      const liveMs = performance.now() - t0;
      const done = this.#materialize(tag, row.id, source, phase1).then(
        (r) => ({ ...r, totalMs: performance.now() - t0 }),
        async (err: unknown) => {
          await cleanup();
          throw err;
        },
      );
      published = true;
      const settled = done.then(
        () => {
          this.store.upsertSnapshot(tag, 'ready');
          this.hooks.event({
            event: 'snapshot.created',
            snapshotTag: tag,
            sandboxId: row.id,
            requestId: req.requestId,
          });
        },
        (err: unknown) => this.#fail(tag, row.id, err, req.requestId),
      );
      void settled.finally(() => {
        this.#inFlight.delete(tag);
        release();
      });
      done.catch(() => undefined); // phase 2 records its own failure (#fail) and callers await `done` themselves; this only keeps it from being an unhandled rejection
      return { tag, sandboxId: row.id, pauseMs: phase1.migrated.pauseMs, liveMs, bytes: phase1.migrated.bytes, done };
    } catch (err) {
      if (wroteRow) this.#fail(tag, row.id, err, req.requestId);
      throw err;
    } finally {
      if (!published) {
        this.#inFlight.delete(tag);
        release();
      }
    }
  }

  async #materialize(
    tag: string,
    sandboxId: string,
    source: SnapshotMeta,
    p: { staging: string; streamPath: string; imageFiles: string[]; migrated: unknown },
  ): Promise<{ memoryBytes: number }> {
    await materializeStream(this.ctx, { streamPath: p.streamPath, dir: p.staging, source });
    await rm(p.streamPath, { force: true });
    // Image files are hard links of the source's: same bytes, same recorded digests.
    const files: SnapshotMeta['files'] = {};
    for (const f of p.imageFiles) files[f] = source.files[f]!;
    const meta = await publishSnapshot(this.ctx, {
      staging: p.staging,
      tag,
      meta: {
        ...source,
        tag,
        createdAt: new Date().toISOString(),
        forkdVersion: FORKD_VERSION,
        files,
        parentTag: source.tag,
        branchedFrom: sandboxId,
      },
      hash: [SNAPSHOT_FILES.memory, SNAPSHOT_FILES.vmstate],
      raceNote: 'during the BRANCH',
    });
    return { memoryBytes: meta!.files[SNAPSHOT_FILES.memory]!.size };
  }

  #fail(tag: string, sandboxId: string, err: unknown, requestId: string | undefined): void {
    const reason = messageOf(err).slice(0, 4000);
    this.store.upsertSnapshot(tag, 'failed', `BRANCH of ${sandboxId} failed: ${reason}`);
    this.ctx.logger.warn('branch failed', { snapshot: tag, sandbox: sandboxId, error: reason });
    this.hooks.event({
      event: 'snapshot.failed',
      snapshotTag: tag,
      sandboxId,
      reason: reason.split('\n')[0],
      requestId,
    });
  }

  /** Runs `fn` after every earlier live migration of the same source. */
  async #serialized<T>(sandboxId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#sourceChain.get(sandboxId) ?? Promise.resolve();
    const mine = prev.then(fn, fn);
    const tail = mine.catch(() => undefined); // the chain only orders BRANCHes of one source; `mine` carries the error to its own caller
    this.#sourceChain.set(sandboxId, tail);
    void tail.then(() => {
      if (this.#sourceChain.get(sandboxId) === tail) this.#sourceChain.delete(sandboxId);
    });
    return mine;
  }

  async #defaultTag(sandboxId: string): Promise<string> {
    for (let n = 1; ; n++) {
      const tag = `branch-${sandboxId}-${n}`;
      if (this.#inFlight.has(tag)) continue;
      const row = this.store.getSnapshot(tag);
      if (row && row.status !== 'failed') continue;
      if (await exists(this.ctx.paths.snapshotDir(tag))) continue;
      return tag;
    }
  }

  /** Shutdown: refuse new BRANCHes and wait for those in flight. */
  idle(): Promise<unknown> {
    this.#closing = true;
    return Promise.allSettled([...this.#inFlight.values()]);
  }
}
