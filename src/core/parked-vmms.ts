// Parked VMMs: child QEMUs of a hot snapshot started ahead of any spawn and left waiting at
// `-incoming defer` (guest RAM mapped, devices created, QMP up), so a spawn that takes one only
// restores: QEMU's own start (~50 ms wall, ~20-30 ms CPU under TCG; bench/results/fork.md) is
// off its critical path. Off unless the daemon is started with `--parked-vmms K`.
//
// - A snapshot is hot once a spawn used it; the pool then keeps K parked for it, refilled one
//   at a time in the background after each spawn (never during one: refills would compete
//   with the restores for the same cores), and drains it after `idleMs` without a spawn.
// - Only spawns without isolation take one: a cgroup must hold QEMU before the restore faults
//   memory in and a namespace must exist before QEMU starts, both per sandbox.
// - Memory: nothing is parked while the host has less than `minAvailableBytes` available, and
//   parked ones are given up when it falls below; a parked QEMU has touched little guest RAM,
//   but it holds QEMU's own heap and TCG buffers.
// - A parked VMM's id is the sandbox id it will have; its run record says `parked`, so a
//   restarted daemon kills it (reconcile.ts) rather than mistaking it for a local fork's child,
//   and snapshot removal does not count it as a user (its QEMU holds the files open: a removed
//   snapshot stays readable to it, and a parked VMM of an older snapshot under the same tag is
//   never handed out: `take` compares the snapshot's identity).
import { performance } from 'node:perf_hooks';
import { messageOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { TeardownStack } from '../lib/teardown.js';
import { hostAvailableBytes } from '../host/memory.js';
import type { CoreContext } from './context.js';
import { startVm, type StartedVm } from './launch-vm.js';
import { writeRunRecord } from './run-dir.js';
import { childLaunchOptions, type LoadedSnapshot } from './sandbox.js';

export interface ParkedVmmOptions {
  /** Parked VMMs kept per hot snapshot; 0 turns the pool off. */
  perSnapshot: number;
  /** A snapshot not spawned from for this long loses its parked VMMs. */
  idleMs?: number;
  /** Park nothing, and give up what is parked, below this much available host memory. */
  minAvailableBytes?: number;
  /** The id of the next parked VMM (the daemon's, with its node key). */
  newId: () => string;
}

export const DEFAULT_PARKED_IDLE_MS = 10 * 60_000;
export const DEFAULT_PARKED_MIN_AVAILABLE_BYTES = 1024 * 1024 * 1024;

/** A child started up to readiness; `restoreChild` finishes it with `restoreStarted`. */
export interface ParkedVmm {
  readonly started: StartedVm;
  readonly snapshotTag: string;
  /** Owns the run dir and QEMU; the taker unwinds it on a failed restore. */
  readonly teardown: TeardownStack;
  readonly logger: Logger;
  /** Rewrite the run record as an ordinary child's: it is a sandbox from now on. */
  claim(): Promise<void>;
}

interface Pool {
  snap: LoadedSnapshot;
  identity: string;
  parked: ParkedVmm[];
  lastSpawn: number;
}

export interface ParkedVmmStats {
  parked: Record<string, number>;
  hits: number;
  misses: number;
}

/** What makes two loads of a tag the same snapshot: its dir and when it was written. */
function identityOf(snap: LoadedSnapshot): string {
  return `${snap.dir}\n${snap.meta.createdAt}`;
}

export class ParkedVmms {
  readonly #pools = new Map<string, Pool>();
  readonly #idleMs: number;
  readonly #minAvailable: number;
  #filling: Promise<void> = Promise.resolve();
  #closed = false;
  #hits = 0;
  #misses = 0;
  readonly #idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: CoreContext,
    private readonly opts: ParkedVmmOptions,
  ) {
    this.#idleMs = opts.idleMs ?? DEFAULT_PARKED_IDLE_MS;
    this.#minAvailable = opts.minAvailableBytes ?? DEFAULT_PARKED_MIN_AVAILABLE_BYTES;
    if (opts.perSnapshot > 0) {
      this.#idleTimer = setInterval(() => void this.#sweep(), Math.max(1000, Math.min(this.#idleMs / 2, 60_000)));
      this.#idleTimer.unref();
    }
  }

  get enabled(): boolean {
    return this.opts.perSnapshot > 0 && !this.#closed;
  }

  /** Up to `n` parked VMMs of `snap`, removed from the pool (the caller owns them now). */
  take(snap: LoadedSnapshot, n: number): ParkedVmm[] {
    if (!this.enabled) return [];
    const pool = this.#pools.get(snap.tag);
    if (pool && pool.identity !== identityOf(snap)) {
      // The tag names another snapshot now (deleted and rebuilt, or unpacked over).
      void this.drain(snap.tag);
    }
    const fresh = pool && pool.identity === identityOf(snap) ? pool : undefined;
    const out = fresh ? fresh.parked.splice(0, n) : [];
    // One that died after its exit handler ran is gone already; one dying right now is not
    // handed out either: the exit handler no longer finds it in the pool, so unwind it here.
    const taken = out.filter((p) => p.started.vm.process.exited === undefined);
    for (const dead of out.filter((p) => !taken.includes(p))) void dead.teardown.unwind();
    this.#hits += taken.length;
    this.#misses += n - taken.length;
    return taken;
  }

  /** A spawn from `snap` finished: it is hot; refill its pool in the background. */
  noteSpawn(snap: LoadedSnapshot): void {
    if (!this.enabled) return;
    let pool = this.#pools.get(snap.tag);
    if (!pool || pool.identity !== identityOf(snap)) {
      if (pool) void this.drain(snap.tag);
      pool = { snap, identity: identityOf(snap), parked: [], lastSpawn: 0 };
      this.#pools.set(snap.tag, pool);
    }
    pool.lastSpawn = performance.now();
    this.#refill(pool);
  }

  /** Give up the parked VMMs of `tag` (its snapshot was deleted or replaced). */
  async drain(tag: string): Promise<void> {
    const pool = this.#pools.get(tag);
    if (!pool) return;
    this.#pools.delete(tag);
    await Promise.all(pool.parked.splice(0).map((p) => p.teardown.unwind()));
  }

  /** Stop refilling and kill every parked VMM (daemon shutdown: they are no sandboxes). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#idleTimer);
    await this.#filling;
    await Promise.all([...this.#pools.keys()].map((tag) => this.drain(tag)));
  }

  stats(): ParkedVmmStats {
    const parked: Record<string, number> = {};
    for (const [tag, pool] of this.#pools) parked[tag] = pool.parked.length;
    return { parked, hits: this.#hits, misses: this.#misses };
  }

  /** One refill at a time across all pools: parking is background work on the same cores. */
  #refill(pool: Pool): void {
    this.#filling = this.#filling.then(async () => {
      while (this.enabled && this.#pools.get(pool.snap.tag) === pool && pool.parked.length < this.opts.perSnapshot) {
        if ((await hostAvailableBytes().catch(() => 0)) < this.#minAvailable) return; // unreadable counts as short
        const parked = await this.#park(pool.snap).catch((err: unknown) => {
          this.ctx.logger.warn('parking a VMM failed; spawns restore without one', {
            snapshot: pool.snap.tag,
            error: messageOf(err),
          });
          return undefined;
        });
        if (!parked) return;
        if (!this.enabled || this.#pools.get(pool.snap.tag) !== pool) {
          await parked.teardown.unwind();
          return;
        }
        pool.parked.push(parked);
        // A parked QEMU that dies (killed, OOM) leaves the pool and its run dir goes.
        void parked.started.vm.process.waitExit().then(async () => {
          const i = pool.parked.indexOf(parked);
          if (i < 0) return;
          pool.parked.splice(i, 1);
          await parked.teardown.unwind();
        });
      }
    });
  }

  async #park(snap: LoadedSnapshot): Promise<ParkedVmm> {
    const id = this.opts.newId();
    const logger = this.ctx.logger.child({ sandbox: id, snapshot: snap.tag, parked: true });
    const teardown = new TeardownStack();
    try {
      const started = await startVm(this.ctx, {
        id,
        ...childLaunchOptions(snap),
        parked: true,
        logger,
        teardown,
      });
      logger.debug('parked a VMM');
      const claim = (): Promise<void> =>
        writeRunRecord(started.runDir, {
          id,
          snapshotTag: snap.tag,
          role: 'child',
          pid: started.vm.pid,
          createdAt: new Date().toISOString(),
        });
      return { started, snapshotTag: snap.tag, teardown, logger, claim };
    } catch (err) {
      await teardown.unwind();
      throw err;
    }
  }

  /** Drain pools idle for `idleMs`, and everything while memory is short. */
  async #sweep(): Promise<void> {
    const short = (await hostAvailableBytes().catch(() => 0)) < this.#minAvailable; // unreadable counts as short
    const now = performance.now();
    for (const [tag, pool] of [...this.#pools]) {
      if (short || now - pool.lastSpawn >= this.#idleMs) {
        if (short && pool.parked.length > 0)
          this.ctx.logger.info('memory is short: parked VMMs given up', { snapshot: tag });
        await this.drain(tag);
      }
    }
  }
}
