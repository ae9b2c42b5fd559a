// The second half of BRANCH, off the source's critical path: turn a live-migration stream
// (RAM in migration format + device state) into a forkable snapshot dir (flat memory.bin +
// device-only vmstate). A QEMU with the source's device layout and RAM share=on on a new
// memory.bin loads the stream (`-S`: the guest must not run here), then saves its device
// state with x-ignore-shared on, exactly like a parent snapshot (QEMU-NOTES "BRANCH").
import { chmod, chown, open } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { ForkdError } from '../lib/errors.js';
import { newSandboxId } from '../lib/ids.js';
import { TeardownStack } from '../lib/teardown.js';
import { Vm, withDiagnostics } from '../vmm/vm.js';
import type { CoreContext } from './context.js';
import { RUN_FILES, SNAPSHOT_FILES } from './paths.js';
import { createRunDir, removeRunDir, writeRunRecord } from './run-dir.js';
import { SANDBOX_OOM_SCORE_ADJ } from './sandbox.js';
import type { SnapshotMeta } from './snapshot-meta.js';
import { vmSpec } from './vm-spec.js';

/** Writes `dir/memory.bin` and `dir/vmstate` from `streamPath`; image files must already be in `dir`. */
export async function materializeStream(
  ctx: CoreContext,
  opts: { streamPath: string; dir: string; source: SnapshotMeta; timeoutMs?: number },
): Promise<{ vmstateBytes: number }> {
  const { facts } = ctx;
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const memPath = join(opts.dir, SNAPSHOT_FILES.memory);
  const mem = await open(memPath, 'w', 0o600);
  await mem.truncate(opts.source.layout.memMiB * 1024 * 1024);
  await mem.close();
  if (facts.vmUser) await chown(memPath, facts.vmUser.uid, facts.vmUser.gid);

  const teardown = new TeardownStack();
  try {
    const runId = newSandboxId();
    const runDir = await createRunDir(ctx.paths, runId, facts.vmUser);
    teardown.push('run dir', () => removeRunDir(ctx.paths, runId));
    const spec = {
      ...vmSpec({
        facts,
        layout: opts.source.layout,
        kernelCmdline: opts.source.kernelCmdline,
        snapshotDir: opts.dir,
        runDir,
        role: 'parent',
      }),
      incoming: true,
      startPaused: true,
    };
    const fd = openSync(opts.streamPath, 'r');
    let vm: Vm;
    try {
      vm = await Vm.start({
        spec,
        migrationFd: fd,
        oomScoreAdj: SANDBOX_OOM_SCORE_ADJ,
        logger: ctx.logger,
        ...(facts.vmUser ? { uid: facts.vmUser.uid, gid: facts.vmUser.gid } : {}),
      });
    } finally {
      closeSync(fd);
    }
    teardown.push('qemu', () => vm.dispose(500));
    await writeRunRecord(runDir, {
      id: runId,
      snapshotTag: null,
      role: 'parent',
      pid: vm.pid,
      createdAt: new Date().toISOString(),
    });
    try {
      await vm.loadIncomingFd3({ ignoreShared: false, timeoutMs, what: 'loading the BRANCH stream' });
    } catch (err) {
      throw await withDiagnostics(vm.process, err, 'materialize');
    }
    const status = await vm.qmp.execute<{ running: boolean; status: string }>('query-status');
    if (status.running) throw new ForkdError('vmm_error', 'materialize: the loaded guest is running (expected paused)');
    const vmstateBytes = await vm.saveDeviceState(join(opts.dir, SNAPSHOT_FILES.vmstate), {
      socketPath: join(runDir, RUN_FILES.migrate),
      ...(facts.vmUser ? { owner: facts.vmUser } : {}),
      timeoutMs,
    });
    await teardown.unwind();
    await chown(memPath, 0, facts.vmUser?.gid ?? 0).catch(() => undefined);
    await chmod(memPath, facts.readonlyPrivateMem ? 0o640 : 0o660);
    return { vmstateBytes };
  } catch (err) {
    await teardown.unwind();
    throw err;
  }
}
