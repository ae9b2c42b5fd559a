// Where an unpacked snapshot goes and how it gets there. Before extraction: which tags are
// new, replaced (--force) or already present (an identical ancestor is kept), and whether each
// snapshot can restore on this host. After verification: snapshot.json cross-checked with the
// manifest, retagged if asked, memory.bin given the owner and mode children need, and the dir
// renamed into place (a replaced snapshot is renamed aside first, then deleted).
import { randomBytes } from 'node:crypto';
import { chmod, chown, lstat, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf, ForkdError, messageOf } from '../lib/errors.js';
import { fsyncFile } from '../lib/fsutil.js';
import { sha256File } from '../lib/hash.js';
import type { CoreContext } from '../core/context.js';
import { qemuVersionString } from '../core/host-facts.js';
import { SNAPSHOT_FILES, type DataPaths } from '../core/paths.js';
import { liveRunRecords } from '../core/run-dir.js';
import {
  compatibilityProblems,
  readSnapshotMeta,
  recordMemoryVerified,
  type SnapshotMeta,
} from '../core/snapshot-meta.js';
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
export async function prepareStaged(ctx: CoreContext, dir: string, item: InstallItem): Promise<void> {
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
    l.mac !== p.mac
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
  // As snapshot-create.ts leaves it: QEMU < 8.2 opens the backing file read-write even for a
  // private (CoW) mapping, so the VM user keeps write permission through its group.
  const memPath = join(dir, SNAPSHOT_FILES.memory);
  await chown(memPath, 0, ctx.facts.vmUser?.gid ?? 0).catch((err: unknown) =>
    ctx.logger.warn('cannot give memory.bin to the VM group; restoring this snapshot may fail', {
      path: memPath,
      error: messageOf(err),
    }),
  );
  await chmod(memPath, ctx.facts.readonlyPrivateMem ? 0o640 : 0o660);
  // Its sha256 was checked as it streamed in (and equals snapshot.json's, checked above).
  await recordMemoryVerified(dir, meta.files[SNAPSHOT_FILES.memory]!.sha256);
  await chmod(dir, 0o755);
}

/** Rename a prepared dir into place. 'replace': the old dir is renamed aside, then deleted. */
export async function publish(paths: DataPaths, staged: string, item: InstallItem): Promise<void> {
  const final = paths.snapshotDir(item.target);
  if (item.action === 'keep') return;
  let trash: string | undefined;
  if (item.action === 'replace') {
    trash = join(paths.snapshotsDir, `.trash-${item.target}-${randomBytes(4).toString('hex')}`);
    await rename(final, trash).catch((err: unknown) => {
      if (errnoOf(err) !== 'ENOENT') throw err;
      trash = undefined;
    });
  } else if (await nameExists(final)) {
    throw new ForkdError('already_exists', appeared(item.target));
  }
  try {
    await rename(staged, final);
  } catch (err) {
    // Put the replaced snapshot back; if even that fails, say where it is rather than lose it quietly.
    const kept = trash === undefined ? '' : await putBack(trash, final);
    if (errnoOf(err) === 'ENOTEMPTY' || errnoOf(err) === 'EEXIST')
      throw new ForkdError('already_exists', `${appeared(item.target)}${kept}`, { cause: err });
    if (kept)
      throw new ForkdError('host_error', `cannot move ${staged} to ${final}: ${messageOf(err)}${kept}`, { cause: err });
    throw err;
  }
  if (trash) await rm(trash, { recursive: true, force: true });
}

const appeared = (tag: string): string => `snapshot ${tag} appeared while the pack was being unpacked`;

/** Renames the replaced snapshot back: '' when that worked, else a clause saying where it stays. */
async function putBack(trash: string, final: string): Promise<string> {
  try {
    await rename(trash, final);
    return '';
  } catch (err) {
    return `; the replaced snapshot could not be put back (${messageOf(err)}) and is in ${trash}`;
  }
}

/** lstat, not stat: a name taken by anything (even a dangling symlink) is taken. A failing lstat means free. */
async function nameExists(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined)) !== undefined;
}

function sameDigests(a: SnapshotMeta['files'], b: SnapshotMeta['files']): boolean {
  const names = Object.keys(a);
  if (names.length !== Object.keys(b).length) return false;
  return names.every((n) => Object.hasOwn(b, n) && a[n]!.sha256 === b[n]!.sha256 && a[n]!.size === b[n]!.size);
}
