// Where an unpacked snapshot goes and how it gets there. Before extraction: which tags are
// new, replaced (--force) or already present (an identical ancestor is kept), and whether each
// snapshot can restore on this host. After verification: snapshot.json cross-checked with the
// manifest, retagged if asked, then published by core's publishSnapshot (memory.bin given the
// owner and mode children need, the dir renamed into place; a replaced snapshot is renamed
// aside first, then deleted).
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ForkdError } from '../lib/errors.js';
import { fsyncFile } from '../lib/fsutil.js';
import { sha256File } from '../lib/hash.js';
import type { CoreContext } from '../core/context.js';
import { qemuVersionString } from '../core/host-facts.js';
import { SNAPSHOT_FILES, type DataPaths } from '../core/paths.js';
import { liveRunRecords } from '../core/run-dir.js';
import { nameExists, publishSnapshot } from '../core/snapshot-publish.js';
import { compatibilityProblems, readSnapshotMeta, type SnapshotMeta } from '../core/snapshot-meta.js';
import type { PackedSnapshot, PackManifest } from './manifest.js';

export interface InstallItem {
  packed: PackedSnapshot;
  /** The tag it is stored under here (the pack's, or --tag for the packed snapshot). */
  target: string;
  action: 'new' | 'replace' | 'keep';
}

export async function planInstall(
  ctx: CoreContext,
  manifest: PackManifest,
  opts: { tag?: string | undefined; force?: boolean | undefined; allowIncompatible?: boolean | undefined },
): Promise<InstallItem[]> {
  const host = { accel: ctx.facts.accel.accel, qemuVersion: qemuVersionString(ctx.facts.qemu) };
  if (opts.tag !== undefined && manifest.snapshots.some((s) => s.tag === opts.tag && s.tag !== manifest.tag))
    throw new ForkdError('invalid_argument', `--tag ${opts.tag} is the tag of an ancestor in the pack; pick another`);
  const plan: InstallItem[] = [];
  for (const packed of manifest.snapshots) {
    const main = packed.tag === manifest.tag;
    const target = main && opts.tag !== undefined ? opts.tag : packed.tag;
    const problems = restoreProblems(packed, host);
    if (problems.length > 0 && !opts.allowIncompatible) {
      throw new ForkdError(
        'incompatible_snapshot',
        `snapshot ${packed.tag} in the pack cannot be restored on this host: ${problems.join('; ')}. Unpack it where it was made, or store it anyway with --allow-incompatible`,
      );
    }
    plan.push({ packed, target, action: await actionFor(ctx.paths, packed, target, main, opts.force === true) });
  }
  const replaced = new Set(plan.filter((p) => p.action === 'replace').map((p) => p.target));
  const users = (await liveRunRecords(ctx.paths)).filter((r) => r.snapshotTag !== null && replaced.has(r.snapshotTag));
  if (users.length > 0) {
    throw new ForkdError(
      'conflict',
      `cannot replace snapshot ${users[0]!.snapshotTag ?? ''}: in use by running sandbox(es) ${users.map((u) => u.id).join(', ')}; stop them first`,
    );
  }
  return plan;
}

/** compatibilityProblems (QEMU version, accelerator) plus the machine, from manifest facts. */
function restoreProblems(p: PackedSnapshot, host: { accel: 'kvm' | 'tcg'; qemuVersion: string }): string[] {
  // compatibilityProblems compares accel and qemuVersion; the manifest carries both.
  const facts: Pick<SnapshotMeta, 'tag' | 'accel' | 'qemuVersion' | 'layout'> = p;
  const problems = compatibilityProblems(facts as SnapshotMeta, host);
  if (p.layout.machine !== 'microvm') problems.push(`machine: snapshot ${String(p.layout.machine)}, this host microvm`);
  return problems;
}

async function actionFor(
  paths: DataPaths,
  packed: PackedSnapshot,
  target: string,
  main: boolean,
  force: boolean,
): Promise<InstallItem['action']> {
  const dir = paths.snapshotDir(target);
  if (!(await nameExists(dir))) return 'new';
  if (!main) {
    // An ancestor already here with the same snapshot.json is the same snapshot: keep it.
    // Unreadable here: not provably the same snapshot, so it is treated as a different one.
    const local = await sha256File(join(dir, SNAPSHOT_FILES.meta)).catch(() => undefined);
    if (local === packed.files[SNAPSHOT_FILES.meta]!.sha256) return 'keep';
  }
  if (force) return 'replace';
  throw new ForkdError(
    'already_exists',
    `snapshot ${target}${main ? '' : ' (an ancestor in the pack)'} already exists here and differs; pass --force to replace it${main ? ', or --tag NEW to store the pack under another tag' : ''}`,
  );
}

/**
 * Make a verified staged dir ready to publish: its snapshot.json must agree with the manifest
 * (what a fork reads is what was checked), retagged when stored under another tag.
 */
export async function prepareStaged(dir: string, item: InstallItem): Promise<void> {
  const { packed, target } = item;
  const meta = await readSnapshotMeta(dir, packed.tag);
  const differs = (what: string): ForkdError =>
    new ForkdError('corrupt_snapshot', `pack: snapshot.json of ${packed.tag} disagrees with the manifest on ${what}`);
  const { [SNAPSHOT_FILES.meta]: _meta, ...files } = packed.files;
  if (!sameDigests(meta.files, files)) throw differs('its file list or digests');
  if (meta.accel !== packed.accel) throw differs('the accelerator');
  if (meta.qemuVersion !== packed.qemuVersion) throw differs('the QEMU version');
  const l = meta.layout;
  const p = packed.layout;
  if (
    l.machine !== p.machine ||
    l.memMiB !== p.memMiB ||
    l.vcpus !== p.vcpus ||
    l.rootDisk !== p.rootDisk ||
    l.mac !== p.mac ||
    (l.rtc ?? false) !== (p.rtc ?? false)
  )
    throw differs('the device layout');
  if (meta.parentTag !== packed.parentTag) throw differs('parentTag');
  if (meta.image.id !== packed.imageId) throw differs('the image id');
  if (target !== packed.tag) {
    const path = join(dir, SNAPSHOT_FILES.meta);
    await rm(path);
    await writeFile(path, `${JSON.stringify({ ...meta, tag: target }, null, 2)}\n`, { mode: 0o644, flag: 'wx' });
    await fsyncFile(path);
  }
}

/**
 * Publish a prepared dir (snapshot-publish.ts: owner and mode of memory.bin, rename; its
 * snapshot.json was verified by prepareStaged). 'replace': the old dir is renamed aside, then
 * deleted; 'keep': nothing to do.
 */
export async function publish(ctx: CoreContext, staged: string, item: InstallItem): Promise<void> {
  if (item.action === 'keep') return;
  await publishSnapshot(ctx, {
    staging: staged,
    tag: item.target,
    replace: item.action === 'replace',
    raceNote: 'while the pack was being unpacked',
  });
}

function sameDigests(a: SnapshotMeta['files'], b: SnapshotMeta['files']): boolean {
  const names = Object.keys(a);
  if (names.length !== Object.keys(b).length) return false;
  return names.every((n) => Object.hasOwn(b, n) && a[n]!.sha256 === b[n]!.sha256 && a[n]!.size === b[n]!.size);
}
