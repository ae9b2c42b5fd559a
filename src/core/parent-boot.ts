// Boot a fresh VM from an image with its RAM in a shared file and wait for its agent: the
// first half of snapshot creation, and a cold boot for benchmarks.
import { join } from 'node:path';
import { linkOrCopy } from '../lib/fsutil.js';
import type { TeardownStack } from '../lib/teardown.js';
import type { AgentClient } from '../agent/client.js';
import { imageDir, type ImageManifest } from '../image/manifest.js';
import type { DeviceLayout } from '../vmm/qemu-args.js';
import type { Vm } from '../vmm/vm.js';
import type { CoreContext } from './context.js';
import { createGuestRamFile, launchVm } from './launch-vm.js';
import { SNAPSHOT_FILES } from './paths.js';

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
  await createGuestRamFile(ctx, memPath, opts.layout.memMiB);
  opts.onProgress?.(`booting ${image.name} (${opts.layout.memMiB} MiB, ${facts.accel.accel})`);
  const { vm, agent, id } = await launchVm(ctx, {
    role: 'parent',
    snapshotTag: null,
    layout: opts.layout,
    kernelCmdline: opts.kernelCmdline,
    snapshotDir: dir,
    ready: { kind: 'boot', timeoutMs: opts.bootTimeoutMs, what: image.name },
    logger: ctx.logger,
    teardown,
  });
  return { vm, agent, runId: id, imageFiles, memPath };
}
