// Boot a fresh VM from an image with its RAM in a shared file and wait for its agent: the
// first half of snapshot creation, and a cold boot for benchmarks.
import { join } from 'node:path';
import { linkOrCopy } from '../lib/fsutil.js';
import type { TeardownStack } from '../lib/teardown.js';
import type { AgentClient } from '../agent/client.js';
import { imageDir, type ImageManifest } from '../image/manifest.js';
import { GUEST_MAC } from '../image/guest-init.js';
import { kernelCmdline, type DeviceLayout } from '../vmm/qemu-args.js';
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
  /** What a snapshot of this VM records: its device layout and the kernel command line it booted. */
  layout: DeviceLayout;
  kernelCmdline: string;
}

/** How a new parent VM is made; the knobs other than size exist to measure a choice (bench). */
export interface ParentShape {
  memMiB: number;
  vcpus: number;
  /** An RTC in the machine (DeviceLayout.rtc); default on: without one the guest waits out RTC timeouts at boot. */
  rtc?: boolean;
  /** The TCG guest-kernel tuning (TCG_CHILD_TUNING); default on. */
  kernelTuning?: boolean;
  /** Skip the guest kernel's crypto self-tests at boot (kernelCmdline); default no. */
  skipCryptoSelfTests?: boolean;
}

/**
 * Boot a fresh VM from an image with its RAM in `dir/memory.bin` (share=on) and wait for the
 * agent: the shared first half of snapshot creation and of a cold boot (benchmarks), and the one
 * place a new VM's device layout and kernel command line are decided (returned for the snapshot
 * to record). Every resource is pushed on `teardown`; the caller unwinds it on failure.
 */
export async function bootFromImage(
  ctx: CoreContext,
  opts: {
    image: ImageManifest;
    shape: ParentShape;
    dir: string;
    bootTimeoutMs: number;
    teardown: TeardownStack;
    onProgress?: (msg: string) => void;
  },
): Promise<BootedVm> {
  const { facts } = ctx;
  const { image, dir, teardown, shape } = opts;
  const layout: DeviceLayout = {
    machine: 'microvm',
    memMiB: shape.memMiB,
    vcpus: shape.vcpus,
    rootDisk: image.rootDisk,
    mac: GUEST_MAC,
    rtc: shape.rtc ?? true,
  };
  const cmdline = kernelCmdline(facts.accel.accel, [], {
    tuned: shape.kernelTuning ?? true,
    ...(shape.skipCryptoSelfTests ? { skipCryptoSelfTests: true } : {}),
    ...(facts.tsc ? { tscKhz: facts.tsc.khz } : {}),
  });
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
  await createGuestRamFile(ctx, memPath, layout.memMiB);
  opts.onProgress?.(`booting ${image.name} (${layout.memMiB} MiB, ${facts.accel.accel})`);
  const { vm, agent, id } = await launchVm(ctx, {
    role: 'parent',
    snapshotTag: null,
    layout,
    kernelCmdline: cmdline,
    snapshotDir: dir,
    ready: { kind: 'boot', timeoutMs: opts.bootTimeoutMs, what: image.name },
    logger: ctx.logger,
    teardown,
  });
  return { vm, agent, runId: id, imageFiles, memPath, layout, kernelCmdline: cmdline };
}
