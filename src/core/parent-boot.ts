// Boot a fresh VM from an image with its RAM in a shared file and wait for its agent: the
// first half of snapshot creation, and a cold boot for benchmarks.
import { chown, open } from 'node:fs/promises';
import { join } from 'node:path';
import { ForkdError, messageOf } from '../lib/errors.js';
import { linkOrCopy } from '../lib/fsutil.js';
import { newSandboxId } from '../lib/ids.js';
import type { TeardownStack } from '../lib/teardown.js';
import { AgentClient } from '../agent/client.js';
import { imageDir, type ImageManifest } from '../image/manifest.js';
import type { DeviceLayout } from '../vmm/qemu-args.js';
import { Vm } from '../vmm/vm.js';
import type { CoreContext } from './context.js';
import { SNAPSHOT_FILES } from './paths.js';
import { createRunDir, removeRunDir, writeRunRecord } from './run-dir.js';
import { SANDBOX_OOM_SCORE_ADJ } from './sandbox.js';
import { vmSpec } from './vm-spec.js';

export interface BootedVm {
  vm: Vm;
  agent: AgentClient;
  runId: string;
  imageFiles: string[];
  memPath: string;
}

/**
 * Boot a fresh VM from an image with its RAM in `dir/memory.bin` (share=on) and wait for the
 * agent: the shared first half of snapshot creation and of a cold boot (benchmarks). Every
 * resource is pushed on `teardown`; the caller unwinds it on failure.
 */
export async function bootFromImage(
  ctx: CoreContext,
  opts: {
    image: ImageManifest;
    layout: DeviceLayout;
    kernelCmdline: string;
    dir: string;
    bootTimeoutMs: number;
    teardown: TeardownStack;
    onProgress?: (msg: string) => void;
  },
): Promise<BootedVm> {
  const { facts } = ctx;
  const { image, dir, teardown } = opts;
  // Pin the image's files inside the dir (hard links: no copy on one filesystem).
  const srcDir = imageDir(ctx.config.dataDir, image.name);
  const imageFiles = [
    SNAPSHOT_FILES.kernel,
    SNAPSHOT_FILES.initrd,
    ...(image.rootDisk ? [SNAPSHOT_FILES.rootDisk] : []),
  ];
  for (const f of imageFiles) await linkOrCopy(join(srcDir, f), join(dir, f));

  // Guest RAM file: sparse, written by the parent QEMU (as the VM user) through share=on.
  const memPath = join(dir, SNAPSHOT_FILES.memory);
  const mem = await open(memPath, 'w', 0o600);
  await mem.truncate(opts.layout.memMiB * 1024 * 1024);
  await mem.close();
  if (facts.vmUser) await chown(memPath, facts.vmUser.uid, facts.vmUser.gid);

  const runId = newSandboxId();
  const runDir = await createRunDir(ctx.paths, runId, facts.vmUser);
  teardown.push('run dir', () => removeRunDir(ctx.paths, runId));
  const spec = vmSpec({
    facts,
    layout: opts.layout,
    kernelCmdline: opts.kernelCmdline,
    snapshotDir: dir,
    runDir,
    role: 'parent',
  });
  opts.onProgress?.(`booting ${image.name} (${opts.layout.memMiB} MiB, ${facts.accel.accel})`);
  const vm = await Vm.start({
    spec,
    oomScoreAdj: SANDBOX_OOM_SCORE_ADJ,
    logger: ctx.logger,
    ...(facts.vmUser ? { uid: facts.vmUser.uid, gid: facts.vmUser.gid } : {}),
  });
  teardown.push('qemu', () => vm.dispose(500));
  await writeRunRecord(ctx.paths.runDir(runId), {
    id: runId,
    snapshotTag: null,
    role: 'parent',
    pid: vm.pid,
    createdAt: new Date().toISOString(),
  });
  let agent: AgentClient;
  try {
    agent = await AgentClient.connect(vm.spec.agentSocket, { timeoutMs: opts.bootTimeoutMs, logger: ctx.logger });
  } catch (err) {
    const diag = await vm.process.diagnostics();
    throw new ForkdError(
      'boot_failed',
      `${image.name} did not become ready within ${opts.bootTimeoutMs / 1000} s: ${messageOf(err)}${diag ? `\n${diag}` : ''}`,
      { cause: err },
    );
  }
  teardown.push('agent', () => agent.close());
  return { vm, agent, runId, imageFiles, memPath };
}
