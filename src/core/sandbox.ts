// A sandbox: one restored child VM with its agent connection, run dir and QEMU process.
// `restoreChild` builds one; `dispose()` tears it all down and is idempotent.
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { newSandboxId } from '../lib/ids.js';
import { TeardownStack } from '../lib/teardown.js';
import { messageOf } from '../lib/errors.js';
import { AgentClient } from '../agent/client.js';
import { Vm } from '../vmm/vm.js';
import type { CoreContext } from './context.js';
import { prepareIsolation, type Isolation, type IsolationOptions } from './isolation.js';
import { SNAPSHOT_FILES } from './paths.js';
import { createRunDir, removeRunDir, writeRunRecord } from './run-dir.js';
import type { SnapshotMeta } from './snapshot-meta.js';
import { vmSpec } from './vm-spec.js';

/** OOM killer preference for sandbox VMMs: well before the daemon or the host's services. */
export const SANDBOX_OOM_SCORE_ADJ = 500;

export interface ChildTimings {
  /** QEMU process spawned and QMP connected. */
  startMs: number;
  /** migrate-incoming until the guest runs again. */
  restoreMs: number;
  /** Whole restore until the agent answered `identity` (the readiness point). */
  readyMs: number;
}

export interface LoadedSnapshot {
  tag: string;
  dir: string;
  meta: SnapshotMeta;
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
      try {
        await this.isolation?.dispose();
      } finally {
        await removeRunDir(this.ctx.paths, this.id);
      }
    })();
    return this.#disposed;
  }
}

export async function restoreChild(
  ctx: CoreContext,
  snap: LoadedSnapshot,
  opts: { id?: string; readyTimeoutMs?: number; hostname?: string; isolation?: IsolationOptions } = {},
): Promise<Sandbox> {
  const id = opts.id ?? newSandboxId();
  const logger = ctx.logger.child({ sandbox: id, snapshot: snap.tag });
  const teardown = new TeardownStack();
  const t0 = performance.now();
  try {
    const runDir = await createRunDir(ctx.paths, id, ctx.facts.vmUser);
    teardown.push('run dir', () => removeRunDir(ctx.paths, id));
    const isolation = opts.isolation ? await prepareIsolation(ctx, id, opts.isolation) : undefined;
    if (isolation) teardown.push('isolation', () => isolation.dispose());
    const spec = vmSpec({
      facts: ctx.facts,
      layout: snap.meta.layout,
      kernelCmdline: snap.meta.kernelCmdline,
      snapshotDir: snap.dir,
      runDir,
      role: 'child',
      ...(isolation ? { net: isolation.net } : {}),
    });
    // The device state reaches QEMU as fd 3: the VM user needs no access to vmstate at all.
    const vmstateFd = openSync(join(snap.dir, SNAPSHOT_FILES.vmstate), 'r');
    let vm: Vm;
    try {
      vm = await Vm.start({
        spec,
        migrationFd: vmstateFd,
        oomScoreAdj: SANDBOX_OOM_SCORE_ADJ,
        logger,
        ...(ctx.facts.vmUser && (isolation?.runAsUidGid ?? true)
          ? { uid: ctx.facts.vmUser.uid, gid: ctx.facts.vmUser.gid }
          : {}),
        ...(isolation?.wrapper ? { wrapper: isolation.wrapper } : {}),
      });
    } finally {
      closeSync(vmstateFd);
    }
    teardown.push('qemu', () => vm.dispose(500));
    // Into the cgroup before the restore faults in guest memory, so that memory is charged.
    await isolation?.onSpawned(vm.pid);
    await writeRunRecord(runDir, {
      id,
      snapshotTag: snap.tag,
      role: 'child',
      pid: vm.pid,
      createdAt: new Date().toISOString(),
    });
    const tStarted = performance.now();
    // Connect to the agent port before the guest resumes, so the virtio-serial "host
    // connected" state the guest saved is already true when it wakes (no reconnect dance).
    const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
    const agentPromise = AgentClient.connect(spec.agentSocket, { timeoutMs: readyTimeoutMs, logger, hello: false });
    agentPromise.catch(() => undefined);
    await vm.restoreFromFd3(readyTimeoutMs);
    const tRestored = performance.now();
    let agent: AgentClient;
    try {
      agent = await agentPromise;
    } catch (err) {
      const diag = await vm.process.diagnostics();
      throw new Error(
        `child ${id}: the agent did not answer after restore: ${messageOf(err)}${diag ? `\n${diag}` : ''}`,
        { cause: err },
      );
    }
    teardown.push('agent', () => agent.close());
    // A child is ready only once it has its own identity: hostname, fresh entropy, clock.
    // Its deadline is what is left of the readiness budget (there was no hello to wait for).
    await agent.identity(
      { sandboxId: id, hostname: opts.hostname ?? id },
      { timeoutMs: Math.max(1, readyTimeoutMs - (performance.now() - tStarted)) },
    );
    const tReady = performance.now();
    teardown.release();
    return new Sandbox(
      id,
      snap.tag,
      vm,
      agent,
      { startMs: tStarted - t0, restoreMs: tRestored - tStarted, readyMs: tReady - t0 },
      new Date(),
      ctx,
      isolation,
    );
  } catch (err) {
    await teardown.unwind();
    throw err;
  }
}
