// Build a parent and save it as a snapshot: boot the image with RAM in a shared file, wait for
// the agent (real readiness, never a sleep), run warm-up commands, warm the Python worker,
// pause, save device state, and publish the snapshot dir (snapshot-publish.ts).
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ForkdError, messageOf } from '../lib/errors.js';
import { formatBytes, freeSpace } from '../host/disk.js';
import { exists } from '../lib/fsutil.js';
import { assertTag } from '../lib/tag.js';
import { MEM_MIB_RANGE, VCPU_RANGE } from '../lib/contract.js';
import { TeardownStack } from '../lib/teardown.js';
import { FORKD_VERSION } from '../lib/version.js';
import { readImageManifest } from '../image/manifest.js';
import type { CoreContext } from './context.js';
import { qemuVersionString } from './host-facts.js';
import { RUN_FILES, SNAPSHOT_FILES } from './paths.js';
import { removeRunDir } from './run-dir.js';
import { SNAPSHOT_FORMAT_VERSION, type SnapshotMeta } from './snapshot-meta.js';
import { AGENT_PROTOCOL_VERSION } from '../lib/version.js';
import { bootFromImage, type ParentShape } from './parent-boot.js';
import { publishSnapshot } from './snapshot-publish.js';

/** memMiB, vcpus and the bench knobs (rtc, kernelTuning, skipCryptoSelfTests) are the parent's ParentShape. */
export interface CreateSnapshotOptions extends ParentShape {
  tag: string;
  image: string;
  warmup: string[];
  /** Python modules to pre-import in the warm worker; default: the image's list. */
  pythonPreload?: string[];
  /** Readiness timeout for the parent's cold boot (the agent answering). */
  bootTimeoutMs: number;
  /** Timeout for each warm-up command. */
  warmupTimeoutMs?: number;
  onProgress?: (msg: string) => void;
}

export async function createSnapshot(ctx: CoreContext, opts: CreateSnapshotOptions): Promise<SnapshotMeta> {
  const tag = assertTag(opts.tag, 'snapshot tag');
  assertTag(opts.image, 'image name');
  checkRange('mem-mib', opts.memMiB, MEM_MIB_RANGE);
  checkRange('vcpus', opts.vcpus, VCPU_RANGE);
  const progress = opts.onProgress ?? (() => undefined);
  const finalDir = ctx.paths.snapshotDir(tag);
  if (await exists(finalDir)) {
    throw new ForkdError(
      'already_exists',
      `snapshot ${tag} already exists; pick another tag or remove it with: forkd snapshot rm ${tag}`,
    );
  }
  const image = await readImageManifest(ctx.config.dataDir, opts.image);
  const pythonPreload = opts.pythonPreload ?? image.pythonPreload;
  if (pythonPreload.length > 0 && !image.hasPython) {
    throw new ForkdError(
      'invalid_argument',
      `image ${image.name} has no python3, so it cannot pre-import ${pythonPreload.join(', ')}; build one with: forkd image build --packages python3-numpy`,
    );
  }
  const { facts } = ctx;

  const teardown = new TeardownStack();
  await mkdir(ctx.paths.snapshotsDir, { recursive: true, mode: 0o755 });
  const staging = ctx.paths.snapshotStagingDir(tag, randomBytes(4).toString('hex'));
  await mkdir(staging, { mode: 0o755 });
  teardown.push('staging dir', () => rm(staging, { recursive: true, force: true }));
  try {
    const booted = await bootFromImage(ctx, {
      image,
      shape: opts,
      dir: staging,
      bootTimeoutMs: opts.bootTimeoutMs,
      teardown,
      onProgress: progress,
    });
    const { vm, agent, runId: id, imageFiles, layout, kernelCmdline } = booted;
    const vmstatePath = join(staging, SNAPSHOT_FILES.vmstate);
    progress('parent ready; running warm-up');
    for (const cmd of opts.warmup) {
      const result = await agent.exec({ shell: cmd, timeoutMs: opts.warmupTimeoutMs ?? 300_000 });
      if (result.exitCode !== 0) {
        const tail = Buffer.concat([result.stdout, result.stderr]).toString('utf8').slice(-2000);
        throw new ForkdError(
          'boot_failed',
          `warm-up command failed (exit ${String(result.exitCode)}${result.signal ? `, signal ${result.signal}` : ''}): ${cmd}\n${tail}`,
        );
      }
    }
    // Starts the eval workers the image has (Node, Python) so every child inherits them warm.
    if (pythonPreload.length > 0) progress(`warming python (${pythonPreload.join(', ')})`);
    await agent.warm(pythonPreload.length > 0 ? { pythonPreload } : {});

    progress('pausing and saving device state');
    await vm.pause();
    await vm.saveDeviceState(vmstatePath, {
      socketPath: join(ctx.paths.runDir(id), RUN_FILES.migrate),
      ...(facts.vmUser ? { owner: facts.vmUser } : {}),
    });
    agent.close();
    await vm.dispose(2000);
    await removeRunDir(ctx.paths, id);

    progress('recording checksums');
    const meta = await publishSnapshot(ctx, {
      staging,
      tag,
      meta: {
        formatVersion: SNAPSHOT_FORMAT_VERSION,
        tag,
        createdAt: new Date().toISOString(),
        forkdVersion: FORKD_VERSION,
        agentProtocol: AGENT_PROTOCOL_VERSION,
        qemuVersion: qemuVersionString(facts.qemu),
        accel: facts.accel.accel,
        layout,
        kernelCmdline,
        image: { name: image.name, id: image.id, hasPython: image.hasPython, pythonPreload },
        files: {},
        warmup: opts.warmup,
        parentTag: null,
        branchedFrom: null,
      },
      hash: [SNAPSHOT_FILES.memory, SNAPSHOT_FILES.vmstate, ...imageFiles],
      raceNote: 'while this one was being built',
    });
    teardown.release();
    progress(`snapshot ${tag} saved`);
    return meta!;
  } catch (err) {
    // A build failing on a full disk said only what broke first: with the data dir on a full
    // tmpfs the parent's guest RAM (memory.bin) could not be backed and the build read "did not
    // become ready within 60 s: agent connection closed" (seen by the fault suite). Measured before the staging dir goes (which frees
    // what filled the disk): when almost nothing is free, say so.
    const free = await freeSpace(ctx.config.dataDir).catch(() => undefined);
    await teardown.unwind();
    if (free && free.freeBytes < FULL_DISK_BYTES && !(err instanceof ForkdError && err.code === 'insufficient_storage'))
      throw new ForkdError(
        'insufficient_storage',
        `${messageOf(err)} (the file system of ${free.measuredPath} is full: ${formatBytes(free.freeBytes)} free; free some space and retry)`,
        { cause: err },
      );
    throw err;
  }
}

/** Less free than this when a build fails: the full disk is named as the likely cause. */
const FULL_DISK_BYTES = 16 * 1024 * 1024;

function checkRange(what: string, value: number, range: { min: number; max: number }): void {
  if (!Number.isInteger(value) || value < range.min || value > range.max) {
    throw new ForkdError(
      'invalid_argument',
      `${what} must be an integer from ${range.min} to ${range.max}, got ${String(value)}`,
    );
  }
}
