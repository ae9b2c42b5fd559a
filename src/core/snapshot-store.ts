// Snapshots on disk: snapshots/<tag>/{memory.bin, vmstate, snapshot.json, vmlinux, initrd.img,
// [rootfs.ext4]}. The image files are hard links, so a snapshot keeps exactly the kernel and
// root disk it booted with even if the image is rebuilt. Listing, loading and removal.
import { lstat, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ForkdError } from '../lib/errors.js';
import { isValidTag } from '../lib/tag.js';
import type { CoreContext } from './context.js';
import { qemuVersionString } from './host-facts.js';
import type { DataPaths } from './paths.js';
import { liveRunRecords } from './run-dir.js';
import type { LoadedSnapshot } from './sandbox.js';
import { assertCompatible, readSnapshotMeta, verifySnapshotFiles, type SnapshotMeta } from './snapshot-meta.js';

/** Load a snapshot for forking: metadata valid, compatible with this host, files intact. */
export async function loadSnapshot(ctx: CoreContext, tag: string): Promise<LoadedSnapshot> {
  const dir = ctx.paths.snapshotDir(tag);
  const meta = await readSnapshotMeta(dir, tag);
  assertCompatible(meta, { accel: ctx.facts.accel.accel, qemuVersion: qemuVersionString(ctx.facts.qemu) });
  await verifySnapshotFiles(dir, meta);
  warnOnTscMismatch(ctx, tag, meta);
  return { tag, dir, meta };
}

const tscWarned = new Set<string>();

/**
 * A TCG snapshot's guest was told its host's TSC rate at boot (host/tsc.ts); restored on a host
 * whose TSC ticks at another rate, its clock runs off by the ratio (each child's clock is set
 * at identity, then drifts). Said once per snapshot and process; the fix is to re-create it here.
 */
function warnOnTscMismatch(ctx: CoreContext, tag: string, meta: SnapshotMeta): void {
  const told = Number(/\btsc_early_khz=(\d+)/.exec(meta.kernelCmdline)?.[1]);
  const host = ctx.facts.tsc?.khz;
  if (!host || !(told > 0) || Math.abs(told / host - 1) < 0.005 || tscWarned.has(`${tag}:${told}`)) return;
  tscWarned.add(`${tag}:${told}`);
  ctx.logger.warn("snapshot made for another TSC rate: its children's clocks will drift; re-create it on this host", {
    snapshot: tag,
    snapshotTscKhz: told,
    hostTscKhz: host,
    /** How much faster (+) or slower (-) than real time the guests' clocks run. */
    clockRatePercent: Math.round((host / told - 1) * 1000) / 10,
  });
}

export interface SnapshotListing {
  tag: string;
  meta: SnapshotMeta | undefined;
  error: string | undefined;
  /** Sum of file sizes as they appear (memory.bin counts its full guest RAM). */
  logicalBytes: number;
  /** Blocks really allocated (memory.bin is sparse; image files are hard links). */
  diskBytes: number;
  modifiedAt: Date;
  inUseBy: string[];
}

export async function listSnapshots(paths: DataPaths): Promise<SnapshotListing[]> {
  let names: string[];
  try {
    names = await readdir(paths.snapshotsDir);
  } catch {
    // no snapshots dir yet: no snapshots
    return [];
  }
  const live = await liveRunRecords(paths);
  const out: SnapshotListing[] = [];
  for (const tag of names.filter(isValidTag).sort()) {
    const dir = paths.snapshotDir(tag);
    let meta: SnapshotMeta | undefined;
    let error: string | undefined;
    try {
      meta = await readSnapshotMeta(dir, tag);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    const { logicalBytes, diskBytes } = await dirSizes(dir);
    out.push({
      tag,
      meta,
      error,
      logicalBytes,
      diskBytes,
      modifiedAt: (await stat(dir)).mtime,
      inUseBy: live.filter((r) => r.snapshotTag === tag).map((r) => r.id),
    });
  }
  return out;
}

async function dirSizes(dir: string): Promise<{ logicalBytes: number; diskBytes: number }> {
  let logicalBytes = 0;
  let diskBytes = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    // a snapshot removed meanwhile counts as empty
    const st = await lstat(join(dir, name)).catch(() => undefined); // as above, for one file
    if (!st?.isFile()) continue;
    logicalBytes += st.size;
    diskBytes += st.blocks * 512;
  }
  return { logicalBytes, diskBytes };
}

/** Remove a snapshot; refuses while a live sandbox maps it. Atomic: renamed away, then deleted. */
export async function removeSnapshot(paths: DataPaths, tag: string): Promise<void> {
  const dir = paths.snapshotDir(tag);
  try {
    await lstat(dir);
  } catch {
    throw new ForkdError('not_found', `snapshot ${tag} not found; list snapshots with: forkd snapshot ls`);
  }
  const users = (await liveRunRecords(paths)).filter((r) => r.snapshotTag === tag);
  if (users.length > 0) {
    throw new ForkdError(
      'conflict',
      `snapshot ${tag} is in use by ${users.length} running sandbox(es): ${users.map((u) => u.id).join(', ')}; stop them first`,
    );
  }
  const trash = join(paths.snapshotsDir, `.trash-${tag}-${randomBytes(4).toString('hex')}`);
  await rename(dir, trash);
  await rm(trash, { recursive: true, force: true });
}
