// A sandbox: one restored child VM with its agent connection, run dir and QEMU process.
// `restoreChild` builds one (through launchVm); `dispose()` tears it all down and is idempotent.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { newSandboxId } from '../lib/ids.js';
import { TeardownStack } from '../lib/teardown.js';
import type { AgentClient } from '../agent/client.js';
import type { Vm } from '../vmm/vm.js';
import type { CoreContext } from './context.js';
import type { Isolation, IsolationSpec } from './isolation.js';
import { launchVm, restoreStarted } from './launch-vm.js';
import type { ParkedVmm } from './parked-vmms.js';
import { SNAPSHOT_FILES } from './paths.js';
import { releaseSandboxHost } from './sandbox-release.js';
import type { SnapshotMeta } from './snapshot-meta.js';

export { SANDBOX_OOM_SCORE_ADJ } from './launch-vm.js';

export interface ChildTimings {
  /** QEMU process spawned and QMP connected. */
  startMs: number;
  /** migrate-incoming until the guest runs again. */
  restoreMs: number;
  /** Whole restore until the agent answered `identity` (the readiness point). */
  readyMs: number;
  /** Whether the child was a parked VMM (core/parked-vmms.ts): then startMs is 0. */
  parked: boolean;
}

export interface LoadedSnapshot {
  tag: string;
  dir: string;
  meta: SnapshotMeta;
}

/** The launch options every child of `snap` shares (a restore, or a parked VMM's start). */
export function childLaunchOptions(snap: LoadedSnapshot) {
  return {
    role: 'child',
    snapshotTag: snap.tag,
    layout: snap.meta.layout,
    kernelCmdline: snap.meta.kernelCmdline,
    snapshotDir: snap.dir,
    migrationFile: join(snap.dir, SNAPSHOT_FILES.vmstate),
  } as const;
}

export class Sandbox {
  #disposed: Promise<void> | undefined;

  constructor(
    readonly id: string,
    readonly snapshotTag: string,
    readonly vm: Vm,
    readonly agent: AgentClient,
    readonly timings: ChildTimings,
    readonly createdAt: Date,
    private readonly ctx: CoreContext,
    /** cgroup and network namespace, when the sandbox was restored with `isolation`. */
    readonly isolation?: Isolation,
  ) {}

  get pid(): number {
    return this.vm.pid;
  }

  dispose(): Promise<void> {
    this.#disposed ??= (async () => {
      this.agent.close();
      await this.vm.dispose(1000);
      await releaseSandboxHost(this.ctx, this.id, { isolation: this.isolation });
    })();
    return this.#disposed;
  }
}

export async function restoreChild(
  ctx: CoreContext,
  snap: LoadedSnapshot,
  opts: { id?: string; readyTimeoutMs?: number; hostname?: string; isolation?: IsolationSpec; parked?: ParkedVmm } = {},
): Promise<Sandbox> {
  if (opts.parked) return restoreParked(ctx, snap, opts.parked, opts);
  const id = opts.id ?? newSandboxId();
  const teardown = new TeardownStack();
  const t0 = performance.now();
  try {
    const { vm, agent, isolation, marks } = await launchVm(ctx, {
      id,
      ...childLaunchOptions(snap),
      ...(opts.isolation ? { isolation: opts.isolation } : {}),
      ready: { kind: 'restore', timeoutMs: opts.readyTimeoutMs ?? 30_000, hostname: opts.hostname ?? id },
      logger: ctx.logger.child({ sandbox: id, snapshot: snap.tag }),
      teardown,
    });
    teardown.release();
    return new Sandbox(
      id,
      snap.tag,
      vm,
      agent,
      {
        startMs: marks.started - t0,
        restoreMs: marks.restored - marks.started,
        readyMs: marks.ready - t0,
        parked: false,
      },
      new Date(),
      ctx,
      isolation,
    );
  } catch (err) {
    await teardown.unwind();
    throw err;
  }
}

/** restoreChild of a parked VMM: its QEMU is up already, so the spawn only restores. */
async function restoreParked(
  ctx: CoreContext,
  snap: LoadedSnapshot,
  parked: ParkedVmm,
  opts: { readyTimeoutMs?: number; hostname?: string },
): Promise<Sandbox> {
  const { started, teardown, logger } = parked;
  const t0 = performance.now();
  try {
    await parked.claim();
    const timeoutMs = opts.readyTimeoutMs ?? 30_000;
    const { vm, agent, marks } = await restoreStarted(
      started,
      { kind: 'restore', timeoutMs, hostname: opts.hostname ?? started.id },
      logger,
      teardown,
      t0,
    );
    teardown.release();
    return new Sandbox(
      started.id,
      snap.tag,
      vm,
      agent,
      { startMs: 0, restoreMs: marks.restored - t0, readyMs: marks.ready - t0, parked: true },
      new Date(),
      ctx,
      undefined,
    );
  } catch (err) {
    await teardown.unwind();
    throw err;
  }
}
