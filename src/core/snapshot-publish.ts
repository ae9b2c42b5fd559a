// The one way a snapshot dir becomes visible: snapshot create, BRANCH and pack unpack build it
// in a staging dir under snapshots/ and hand it here, which fsyncs the RAM and device state,
// gives memory.bin the owner and mode children need, records the checksums in snapshot.json
// (unless a verified one is already there: unpack), and renames the dir into place. Readers
// list snapshots/ by name, so a crash at any point leaves no half snapshot visible, and a
// permission step that fails is an error naming the path: a snapshot published with the
// wrong owner fails later, in every child, far from the cause.
import { randomBytes } from 'node:crypto';
import { chmod, chown, lstat, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf, ForkdError, messageOf } from '../lib/errors.js';
import { fsyncFile } from '../lib/fsutil.js';
import { digestFile } from '../lib/hash.js';
import type { CoreContext } from './context.js';
import { SNAPSHOT_FILES } from './paths.js';
import { recordMemoryVerified, type SnapshotMeta } from './snapshot-meta.js';

export interface PublishOptions {
  /** The built dir, inside ctx.paths.snapshotsDir. */
  staging: string;
  tag: string;
  /**
   * snapshot.json to write; `files` is completed with the digest of every name in `hash`.
   * Absent: the staging dir already holds a verified snapshot.json (unpack).
   */
  meta?: SnapshotMeta;
  /** Files of `staging` to hash into meta.files (those whose digests are not known already). */
  hash?: string[];
  /** Replace an existing snapshot of the tag (unpack --force): the old dir is renamed aside first. */
  replace?: boolean;
  /** Finishes "snapshot <tag> appeared ..." when the tag was taken meanwhile. */
  raceNote: string;
  /**
   * memory.bin's owner. Default: root and the VM user's group (QEMU < 8.2 opens the backing
   * file read-write even for a private CoW mapping, so the group keeps write permission; see
   * docs/SECURITY.md); none without a VM user (QEMU runs as forkd's own user).
   */
  owner?: { uid: number; gid: number };
}

/** Publishes the dir and returns the snapshot.json written (undefined when one was there). */
export async function publishSnapshot(ctx: CoreContext, opts: PublishOptions): Promise<SnapshotMeta | undefined> {
  const memPath = join(opts.staging, SNAPSHOT_FILES.memory);
  const vmstatePath = join(opts.staging, SNAPSHOT_FILES.vmstate);
  await fsyncFile(memPath);
  await fsyncFile(vmstatePath);
  const vmGroup = ctx.facts.vmUser?.gid;
  const owner = opts.owner ?? (vmGroup === undefined ? undefined : { uid: 0, gid: vmGroup });
  if (owner) await step(chown(memPath, owner.uid, owner.gid), `give ${memPath} to ${owner.uid}:${owner.gid}`);
  const memMode = ctx.facts.readonlyPrivateMem ? 0o640 : 0o660;
  await step(chmod(memPath, memMode), `set mode ${memMode.toString(8)} on ${memPath}`);
  await step(chmod(opts.staging, 0o755), `set mode 755 on ${opts.staging}`);
  let meta: SnapshotMeta | undefined;
  const metaPath = join(opts.staging, SNAPSHOT_FILES.meta);
  if (opts.meta) {
    const files = { ...opts.meta.files };
    for (const f of opts.hash ?? []) files[f] = await digestFile(join(opts.staging, f));
    meta = { ...opts.meta, files };
    await writeFile(metaPath, `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o644 });
    await fsyncFile(metaPath);
  }
  // memory.bin's digest is known here (just hashed, or checked as a pack streamed in and equal
  // to the verified snapshot.json's): stamp it after the chown/chmod above, so the first fork
  // need not hash the file again (snapshot-meta.ts, MEMORY_STAMP_FILE).
  // Best effort, like the stamp itself: without one the next fork hashes memory.bin again.
  const recorded =
    meta ??
    (await readFile(metaPath, 'utf8')
      .then((t) => JSON.parse(t) as SnapshotMeta)
      .catch(() => undefined));
  const memSha = recorded?.files[SNAPSHOT_FILES.memory]?.sha256;
  if (memSha) await recordMemoryVerified(opts.staging, memSha);
  await renameIntoPlace(ctx, opts);
  return meta;
}

async function step(op: Promise<void>, what: string): Promise<void> {
  await op.catch((err: unknown) => {
    throw new ForkdError('host_error', `cannot ${what}: ${messageOf(err)}; the snapshot was not published`, {
      cause: err,
    });
  });
}

async function renameIntoPlace(ctx: CoreContext, opts: PublishOptions): Promise<void> {
  const { paths } = ctx;
  const final = paths.snapshotDir(opts.tag);
  const appeared = `snapshot ${opts.tag} appeared ${opts.raceNote}`;
  let trash: string | undefined;
  if (opts.replace) {
    trash = join(paths.snapshotsDir, `.trash-${opts.tag}-${randomBytes(4).toString('hex')}`);
    await rename(final, trash).catch((err: unknown) => {
      if (errnoOf(err) !== 'ENOENT') throw err;
      trash = undefined;
    });
  } else if (await nameExists(final)) {
    throw new ForkdError('already_exists', appeared);
  }
  try {
    await rename(opts.staging, final);
  } catch (err) {
    // Put the replaced snapshot back; if even that fails, say where it is rather than lose it quietly.
    const kept = trash === undefined ? '' : await putBack(trash, final);
    if (errnoOf(err) === 'ENOTEMPTY' || errnoOf(err) === 'EEXIST')
      throw new ForkdError('already_exists', `${appeared}${kept}`, { cause: err });
    if (kept)
      throw new ForkdError('host_error', `cannot move ${opts.staging} to ${final}: ${messageOf(err)}${kept}`, {
        cause: err,
      });
    throw err;
  }
  if (trash) await rm(trash, { recursive: true, force: true });
}

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
export async function nameExists(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined)) !== undefined; // ENOENT and the like: nothing holds the name
}
