// A cold boot of an image until its agent answers, then teardown: the baseline that fork is
// compared with in benchmarks ("fork vs cold boot of the same image, same run").
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TeardownStack } from '../lib/teardown.js';
import { readImageManifest } from '../image/manifest.js';
import type { CoreContext } from './context.js';
import { bootFromImage, type ParentShape } from './parent-boot.js';

export async function coldBoot(
  ctx: CoreContext,
  opts: Omit<ParentShape, 'kernelTuning'> & { image: string; bootTimeoutMs: number },
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
      shape: opts,
      dir,
      bootTimeoutMs: opts.bootTimeoutMs,
      teardown,
    });
    return { readyMs: performance.now() - t0 };
  } finally {
    await teardown.unwind();
  }
}
