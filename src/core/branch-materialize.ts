// The second half of BRANCH, off the source's critical path: turn a live-migration stream
// (RAM in migration format + device state) into a forkable snapshot dir (flat memory.bin +
// device-only vmstate). A QEMU with the source's device layout and RAM share=on on a new
// memory.bin loads the stream (`-S`: the guest must not run here), then saves its device
// state with x-ignore-shared on, exactly like a parent snapshot (QEMU-NOTES "BRANCH").
import { join } from 'node:path';
import { ForkdError } from '../lib/errors.js';
import { TeardownStack } from '../lib/teardown.js';
import type { CoreContext } from './context.js';
import { createGuestRamFile, launchVm } from './launch-vm.js';
import { RUN_FILES, SNAPSHOT_FILES } from './paths.js';
import type { SnapshotMeta } from './snapshot-meta.js';

/** Writes `dir/memory.bin` and `dir/vmstate` from `streamPath`; image files must already be in `dir`. */
export async function materializeStream(
  ctx: CoreContext,
  opts: { streamPath: string; dir: string; source: SnapshotMeta; timeoutMs?: number },
): Promise<{ vmstateBytes: number }> {
  const { facts } = ctx;
  const timeoutMs = opts.timeoutMs ?? 600_000;
  await createGuestRamFile(ctx, join(opts.dir, SNAPSHOT_FILES.memory), opts.source.layout.memMiB);
  const teardown = new TeardownStack();
  try {
    const { vm, runDir } = await launchVm(ctx, {
      role: 'parent',
      snapshotTag: null,
      layout: opts.source.layout,
      kernelCmdline: opts.source.kernelCmdline,
      snapshotDir: opts.dir,
      migrationFile: opts.streamPath,
      startPaused: true,
      ready: { kind: 'load-stream', timeoutMs },
      logger: ctx.logger,
      teardown,
    });
    const status = await vm.qmp.execute<{ running: boolean; status: string }>('query-status');
    if (status.running) throw new ForkdError('vmm_error', 'materialize: the loaded guest is running (expected paused)');
    const vmstateBytes = await vm.saveDeviceState(join(opts.dir, SNAPSHOT_FILES.vmstate), {
      socketPath: join(runDir, RUN_FILES.migrate),
      ...(facts.vmUser ? { owner: facts.vmUser } : {}),
      timeoutMs,
    });
    return { vmstateBytes };
  } finally {
    // Success or not, the loader QEMU and its run dir go: only the files in `dir` remain.
    await teardown.unwind();
  }
}
