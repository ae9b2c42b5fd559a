// Build a parent and save it as a snapshot: boot the image with RAM in a shared file, wait for
// the agent (real readiness, never a sleep), run warm-up commands, warm the Python worker,
// pause, save device state, and publish the snapshot dir atomically (staging dir + rename).
import { chmod, chown, link, copyFile, mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ForkdError, messageOf } from '../lib/errors.js';
import { digestFile } from '../lib/hash.js';
import { newSandboxId } from '../lib/ids.js';
import { assertTag } from '../lib/tag.js';
import { TeardownStack } from '../lib/teardown.js';
import { FORKD_VERSION } from '../lib/version.js';
import { AgentClient } from '../agent/client.js';
import { imageDir, readImageManifest, type ImageManifest } from '../image/manifest.js';
import { GUEST_MAC } from '../image/guest-init.js';
import { kernelCmdline, type DeviceLayout } from '../vmm/qemu-args.js';
import { Vm } from '../vmm/vm.js';
import type { CoreContext } from './context.js';
import { qemuVersionString } from './host-facts.js';
import { RUN_FILES, SNAPSHOT_FILES } from './paths.js';
import { createRunDir, removeRunDir, writeRunRecord } from './run-dir.js';
import { SANDBOX_OOM_SCORE_ADJ } from './sandbox.js';
import { SNAPSHOT_FORMAT_VERSION, type SnapshotMeta } from './snapshot-meta.js';
import { vmSpec } from './vm-spec.js';

export interface CreateSnapshotOptions {
  tag: string;
  image: string;
  memMiB: number;
  vcpus: number;
  warmup: string[];
  /** Python modules to pre-import in the warm worker; default: the image's list. */
  pythonPreload?: string[];
  /** Readiness timeout for the parent's cold boot (the agent answering). */
  bootTimeoutMs: number;
  /** Timeout for each warm-up command. */
  warmupTimeoutMs?: number;
  onProgress?: (msg: string) => void;
}

export const MEM_MIB_RANGE = { min: 128, max: 16384 } as const;
export const VCPU_RANGE = { min: 1, max: 16 } as const;

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
      `snapshot ${tag} already exists; pick another tag or remove it with: forkd rmi ${tag}`,
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
  const layout: DeviceLayout = {
    machine: 'microvm',
    memMiB: opts.memMiB,
    vcpus: opts.vcpus,
    rootDisk: image.rootDisk,
    mac: GUEST_MAC,
  };
  const cmdline = kernelCmdline(facts.accel.accel);

  const teardown = new TeardownStack();
  await mkdir(ctx.paths.snapshotsDir, { recursive: true, mode: 0o755 });
  const staging = ctx.paths.snapshotStagingDir(tag, randomBytes(4).toString('hex'));
  await mkdir(staging, { mode: 0o755 });
  teardown.push('staging dir', () => rm(staging, { recursive: true, force: true }));
  try {
    const booted = await bootFromImage(ctx, {
      image,
      layout,
      kernelCmdline: cmdline,
      dir: staging,
      bootTimeoutMs: opts.bootTimeoutMs,
      teardown,
      onProgress: progress,
    });
    const { vm, agent, runId: id, imageFiles, memPath } = booted;
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
    if (pythonPreload.length > 0) {
      progress(`warming python (${pythonPreload.join(', ')})`);
      await agent.warm({ pythonPreload });
    }

    progress('pausing and saving device state');
    await vm.pause();
    await vm.saveDeviceState(vmstatePath, {
      socketPath: join(ctx.paths.runDir(id), RUN_FILES.migrate),
      ...(facts.vmUser ? { owner: facts.vmUser } : {}),
    });
    agent.close();
    await vm.kill(2000);
    await removeRunDir(ctx.paths, id);

    progress('recording checksums');
    await fsyncFile(memPath);
    await fsyncFile(vmstatePath);
    // QEMU < 8.2 opens the backing file read-write even for a private (CoW) mapping, so the
    // VM user keeps write permission through its group. Documented in docs/SECURITY.md.
    await chown(memPath, 0, facts.vmUser?.gid ?? 0).catch(() => undefined);
    await chmod(memPath, facts.readonlyPrivateMem ? 0o640 : 0o660);
    const files: SnapshotMeta['files'] = {};
    for (const f of [SNAPSHOT_FILES.memory, SNAPSHOT_FILES.vmstate, ...imageFiles])
      files[f] = await digestFile(join(staging, f));
    const meta: SnapshotMeta = {
      formatVersion: SNAPSHOT_FORMAT_VERSION,
      tag,
      createdAt: new Date().toISOString(),
      forkdVersion: FORKD_VERSION,
      qemuVersion: qemuVersionString(facts.qemu),
      accel: facts.accel.accel,
      layout,
      kernelCmdline: cmdline,
      image: { name: image.name, id: image.id, hasPython: image.hasPython, pythonPreload },
      files,
      warmup: opts.warmup,
      parentTag: null,
      branchedFrom: null,
    };
    await writeFile(join(staging, SNAPSHOT_FILES.meta), `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o644 });
    await fsyncFile(join(staging, SNAPSHOT_FILES.meta));
    if (await exists(finalDir))
      throw new ForkdError('already_exists', `snapshot ${tag} appeared while this one was being built`);
    await rename(staging, finalDir);
    teardown.release();
    progress(`snapshot ${tag} saved`);
    return meta;
  } catch (err) {
    await teardown.unwind();
    throw err;
  }
}

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
  teardown.push('qemu', () => vm.kill(500));
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

function checkRange(what: string, value: number, range: { min: number; max: number }): void {
  if (!Number.isInteger(value) || value < range.min || value > range.max) {
    throw new ForkdError(
      'invalid_argument',
      `${what} must be an integer from ${range.min} to ${range.max}, got ${String(value)}`,
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}

async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
