// The one way forkd launches a VM: run dir -> (isolation) -> spec -> argv -> spawn -> QMP ->
// run record -> readiness. Used by the parent boot (snapshot create, cold boot), the child
// restore (fork, the daemon's spawn) and BRANCH materialization; they differ only in the
// readiness step they ask for:
// - `boot`: a fresh guest; ready when its agent answered `hello`.
// - `restore`: a child; the agent is connected *before* the restore (the guest saved "host
//   connected" and must find it true when it wakes), then fd 3 is restored, then `identity`.
// - `load-stream`: a BRANCH stream on fd 3 is loaded and the guest stays paused (no agent).
// Every resource is pushed on the caller's teardown stack, so a failure anywhere unwinds it.
// `startVm` is the part before readiness: a parked VMM (core/parked-vmms.ts) is a child
// started that far ahead of its spawn, and `restoreStarted` finishes it.
import { closeSync, openSync } from 'node:fs';
import { chown, open } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { ForkdError, messageOf } from '../lib/errors.js';
import { newSandboxId } from '../lib/ids.js';
import type { Logger } from '../lib/log.js';
import type { TeardownStack } from '../lib/teardown.js';
import { AgentClient } from '../agent/client.js';
import type { DeviceLayout } from '../vmm/qemu-args.js';
import { Vm, withDiagnostics } from '../vmm/vm.js';
import type { CoreContext } from './context.js';
import { prepareIsolation, type Isolation, type IsolationSpec } from './isolation.js';
import { createRunDir, removeRunDir, writeRunRecord } from './run-dir.js';
import { vmSpec } from './vm-spec.js';

/** OOM killer preference for sandbox VMMs: well before the daemon or the host's services. */
export const SANDBOX_OOM_SCORE_ADJ = 500;

export type Readiness =
  | { kind: 'boot'; timeoutMs: number; /** Names the image in a timeout error. */ what: string }
  | { kind: 'restore'; timeoutMs: number; hostname: string }
  | { kind: 'load-stream'; timeoutMs: number };

export interface LaunchOptions<R extends Readiness = Readiness> {
  /** The run dir's id (a child's sandbox id); a new one when absent. */
  id?: string;
  role: 'parent' | 'child';
  /** Recorded in run/<id>/sandbox.json (null for a parent or a BRANCH loader). */
  snapshotTag: string | null;
  layout: DeviceLayout;
  kernelCmdline: string;
  /** Directory holding vmlinux, initrd.img, [rootfs.ext4] and memory.bin. */
  snapshotDir: string;
  /** A file QEMU gets as fd 3 (a vmstate to restore, a BRANCH stream to load). */
  migrationFile?: string;
  /** BRANCH loader: `-S`, so the loaded guest never runs here. */
  startPaused?: boolean;
  isolation?: IsolationSpec;
  ready: R;
  logger: Logger;
  teardown: TeardownStack;
}

export interface LaunchedVm {
  id: string;
  runDir: string;
  vm: Vm;
  isolation: Isolation | undefined;
  /** performance.now() marks: QEMU spawned and QMP up; the restore done; ready. */
  marks: { started: number; restored: number; ready: number };
}

/** A VM up to its readiness step: run dir, isolation, QEMU spawned, QMP up, run record written. */
export interface StartedVm {
  id: string;
  runDir: string;
  vm: Vm;
  isolation: Isolation | undefined;
  /** performance.now() when QMP was up. */
  started: number;
}

export async function launchVm(
  ctx: CoreContext,
  opts: LaunchOptions<Extract<Readiness, { kind: 'boot' | 'restore' }>>,
): Promise<LaunchedVm & { agent: AgentClient }>;
export async function launchVm(ctx: CoreContext, opts: LaunchOptions): Promise<LaunchedVm>;
export async function launchVm(
  ctx: CoreContext,
  opts: LaunchOptions,
): Promise<LaunchedVm & { agent: AgentClient | undefined }> {
  const { ready, logger, teardown } = opts;
  const launched = await startVm(ctx, opts);
  const { vm, started } = launched;
  switch (ready.kind) {
    case 'boot': {
      const agent = await bootReady(vm, ready, logger);
      teardown.push('agent', () => agent.close());
      const now = performance.now();
      return { ...launched, agent, marks: { started, restored: now, ready: now } };
    }
    case 'restore':
      return { ...launched, ...(await restoreReady(vm, launched.id, ready, logger, teardown, started)) };
    case 'load-stream': {
      try {
        await vm.loadIncomingFd3({
          ignoreShared: false,
          timeoutMs: ready.timeoutMs,
          what: 'loading the BRANCH stream',
        });
      } catch (err) {
        throw await withDiagnostics(vm.process, err, 'materialize');
      }
      const now = performance.now();
      return { ...launched, agent: undefined, marks: { started, restored: now, ready: now } };
    }
  }
}

/**
 * Finish a child started ahead of time (a parked VMM): restore fd 3, connect, identity. The
 * marks count from `from` (when the spawn took it), so they say what the spawn waited for.
 */
export async function restoreStarted(
  started: StartedVm,
  ready: Extract<Readiness, { kind: 'restore' }>,
  logger: Logger,
  teardown: TeardownStack,
  from: number,
): Promise<LaunchedVm & { agent: AgentClient }> {
  return { ...started, ...(await restoreReady(started.vm, started.id, ready, logger, teardown, from)) };
}

/** launchVm up to readiness: run dir, isolation, spawn, QMP, run record (`parked` when asked). */
export async function startVm(
  ctx: CoreContext,
  opts: Omit<LaunchOptions, 'ready'> & { parked?: boolean },
): Promise<StartedVm> {
  const { facts } = ctx;
  const { teardown, logger } = opts;
  const id = opts.id ?? newSandboxId();
  const runDir = await createRunDir(ctx.paths, id, facts.vmUser);
  teardown.push('run dir', () => removeRunDir(ctx.paths, id));
  const isolation = opts.isolation ? await prepareIsolation(ctx, id, opts.isolation) : undefined;
  if (isolation) teardown.push('isolation', () => isolation.dispose());
  const base = vmSpec({
    facts,
    layout: opts.layout,
    kernelCmdline: opts.kernelCmdline,
    snapshotDir: opts.snapshotDir,
    runDir,
    role: opts.role,
    ...(isolation ? { net: isolation.net } : {}),
  });
  const spec = opts.startPaused ? { ...base, incoming: true, startPaused: true } : base;
  // The migration file reaches QEMU as fd 3: the VM user needs no access to it at all.
  const fd = opts.migrationFile === undefined ? undefined : openSync(opts.migrationFile, 'r');
  let vm: Vm;
  try {
    vm = await Vm.start({
      spec,
      oomScoreAdj: SANDBOX_OOM_SCORE_ADJ,
      logger,
      ...(fd !== undefined ? { migrationFd: fd } : {}),
      // With a namespace wrapper, the wrapper drops to the VM user instead of the spawn.
      ...(facts.vmUser && (isolation?.runAsUidGid ?? true) ? { uid: facts.vmUser.uid, gid: facts.vmUser.gid } : {}),
      ...(isolation?.wrapper ? { wrapper: isolation.wrapper } : {}),
    });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  teardown.push('qemu', () => vm.dispose(500));
  // Into the cgroup before the restore faults in guest memory, so that memory is charged.
  await isolation?.onSpawned(vm.pid);
  await writeRunRecord(runDir, {
    id,
    snapshotTag: opts.snapshotTag,
    role: opts.role,
    pid: vm.pid,
    createdAt: new Date().toISOString(),
    ...(opts.parked ? { parked: true } : {}),
  });
  return { id, runDir, vm, isolation, started: performance.now() };
}

async function bootReady(vm: Vm, ready: { timeoutMs: number; what: string }, logger: Logger): Promise<AgentClient> {
  try {
    return await AgentClient.connect(vm.spec.agentSocket, { timeoutMs: ready.timeoutMs, logger });
  } catch (err) {
    const diag = await vm.process.diagnostics();
    throw new ForkdError(
      'boot_failed',
      `${ready.what} did not become ready within ${ready.timeoutMs / 1000} s: ${messageOf(err)}${diag ? `\n${diag}` : ''}`,
      { cause: err },
    );
  }
}

async function restoreReady(
  vm: Vm,
  id: string,
  ready: { timeoutMs: number; hostname: string },
  logger: Logger,
  teardown: TeardownStack,
  started: number,
): Promise<{ agent: AgentClient; marks: LaunchedVm['marks'] }> {
  // Connect to the agent port before the guest resumes, so the virtio-serial "host
  // connected" state the guest saved is already true when it wakes (no reconnect dance).
  const agentPromise = AgentClient.connect(vm.spec.agentSocket, { timeoutMs: ready.timeoutMs, logger, hello: false });
  // Awaited below; marked handled so a failed restore does not also report this rejection.
  agentPromise.catch(() => undefined);
  await vm.restoreFromFd3(ready.timeoutMs);
  const restored = performance.now();
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
    { sandboxId: id, hostname: ready.hostname },
    { timeoutMs: Math.max(1, ready.timeoutMs - (performance.now() - started)) },
  );
  return { agent, marks: { started, restored, ready: performance.now() } };
}

/**
 * The guest RAM file of a share=on VM (a parent, a BRANCH loader): sparse, `memMiB` long, and
 * the VM user's, since QEMU (as that user) writes the guest's memory into it.
 */
export async function createGuestRamFile(ctx: CoreContext, path: string, memMiB: number): Promise<void> {
  const mem = await open(path, 'w', 0o600);
  try {
    await mem.truncate(memMiB * 1024 * 1024);
  } finally {
    await mem.close();
  }
  const vmUser = ctx.facts.vmUser;
  if (!vmUser) return;
  await chown(path, vmUser.uid, vmUser.gid).catch((err: unknown) => {
    throw new ForkdError(
      'host_error',
      `cannot give ${path} to the VM user (${vmUser.uid}:${vmUser.gid}): ${messageOf(err)}`,
      {
        cause: err,
      },
    );
  });
}
