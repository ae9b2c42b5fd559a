// A cold boot of an image until its agent answers, then teardown: the baseline that fork is
// compared with in benchmarks ("fork vs cold boot of the same image, same run").
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TeardownStack } from '../lib/teardown.js';
import { readImageManifest } from '../image/manifest.js';
import { GUEST_MAC } from '../image/guest-init.js';
import { kernelCmdline } from '../vmm/qemu-args.js';
import type { CoreContext } from './context.js';
import { bootFromImage } from './parent-boot.js';

export async function coldBoot(
  ctx: CoreContext,
  opts: {
    image: string;
    memMiB: number;
    vcpus: number;
    bootTimeoutMs: number;
    /** Bench knobs: the machine's RTC (default on, as snapshots have it); skipping the kernel's crypto self-tests. */
    rtc?: boolean;
    skipCryptoSelfTests?: boolean;
  },
): Promise<{ readyMs: number }> {
  const image = await readImageManifest(ctx.config.dataDir, opts.image);
  await mkdir(ctx.paths.snapshotsDir, { recursive: true });
  const dir = await mkdtemp(join(ctx.paths.snapshotsDir, '.coldboot-'));
  await chmod(dir, 0o755); // mkdtemp makes it 0700; QEMU runs as the VM user and reads the kernel here
  const teardown = new TeardownStack();
  teardown.push('cold boot dir', () => rm(dir, { recursive: true, force: true }));
  try {
    const t0 = performance.now();
    await bootFromImage(ctx, {
      image,
      layout: {
        machine: 'microvm',
        memMiB: opts.memMiB,
        vcpus: opts.vcpus,
        rootDisk: image.rootDisk,
        mac: GUEST_MAC,
        rtc: opts.rtc ?? true,
      },
      kernelCmdline: kernelCmdline(ctx.facts.accel.accel, [], {
        ...(ctx.facts.tsc ? { tscKhz: ctx.facts.tsc.khz } : {}),
        ...(opts.skipCryptoSelfTests ? { skipCryptoSelfTests: true } : {}),
      }),
      dir,
      bootTimeoutMs: opts.bootTimeoutMs,
      teardown,
    });
    return { readyMs: performance.now() - t0 };
  } finally {
    await teardown.unwind();
  }
}
