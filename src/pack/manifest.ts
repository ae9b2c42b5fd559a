// manifest.json, the first entry of every pack: what the pack holds and where it was made.
// Parsed strictly as hostile input: every tag goes through the one tag rule BEFORE any path is
// derived from it (an advisory of the original was traversal through a pack manifest's tag),
// every file name must be one a snapshot has, every digest well formed.
import { ForkdError, isForkdError } from '../lib/errors.js';
import { assertTag } from '../lib/tag.js';
import { SNAPSHOT_FILES } from '../core/paths.js';
import type { SnapshotMeta } from '../core/snapshot-meta.js';
import type { FileDigest } from '../image/manifest.js';
import type { DeviceLayout, Accel } from '../vmm/qemu-args.js';

export const PACK_FORMAT = 'forkd-pack';
export const PACK_FORMAT_VERSION = 1;
export const MANIFEST_NAME = 'manifest.json';
/** A manifest is a few KiB; anything much larger is not one of ours. */
export const MANIFEST_MAX_BYTES = 1024 * 1024;
/** Longest parentTag chain a pack may carry. */
export const MAX_SNAPSHOTS_PER_PACK = 64;
export const PACK_EXTENSION = '.forkd.tar.zst';

export const SNAPSHOT_FILE_NAMES: readonly string[] = Object.values(SNAPSHOT_FILES);
const REQUIRED_FILES = [SNAPSHOT_FILES.meta, SNAPSHOT_FILES.memory, SNAPSHOT_FILES.vmstate];

export interface PackedSnapshot {
  tag: string;
  parentTag: string | null;
  createdAt: string;
  qemuVersion: string;
  accel: Accel;
  layout: DeviceLayout;
  imageId: string;
  /** Every file of snapshots/<tag>/ in the pack, snapshot.json included. */
  files: Record<string, FileDigest>;
}

export interface PackManifest {
  format: typeof PACK_FORMAT;
  formatVersion: number;
  /** The snapshot this pack is for; the others are its ancestors (parentTag chain). */
  tag: string;
  createdAt: string;
  forkdVersion: string;
  /** The packed snapshot first, then its ancestors, nearest first. */
  snapshots: PackedSnapshot[];
}

export function packedSnapshot(meta: SnapshotMeta, metaDigest: FileDigest): PackedSnapshot {
  return {
    tag: meta.tag,
    parentTag: meta.parentTag,
    createdAt: meta.createdAt,
    qemuVersion: meta.qemuVersion,
    accel: meta.accel,
    layout: meta.layout,
    imageId: meta.image.id,
    files: { [SNAPSHOT_FILES.meta]: metaDigest, ...meta.files },
  };
}

/** Total bytes of every file the manifest declares. */
export function declaredBytes(m: PackManifest): number {
  let total = 0;
  for (const s of m.snapshots) for (const f of Object.values(s.files)) total += f.size;
  return total;
}

const bad = (msg: string): ForkdError => new ForkdError('corrupt_snapshot', `pack manifest: ${msg}`);

/** A tag from the manifest through the one tag rule; a bad one makes the pack corrupt. */
function manifestTag(value: unknown, what: string): string {
  try {
    return assertTag(value, what);
  } catch (err) {
    if (isForkdError(err)) throw new ForkdError('corrupt_snapshot', `pack manifest: ${err.message}`, { cause: err });
    throw err;
  }
}

export function parseManifest(data: Buffer): PackManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(data.toString('utf8'));
  } catch {
    throw bad('manifest.json is not valid JSON');
  }
  const m = object(raw, 'manifest.json');
  if (m.format !== PACK_FORMAT) throw bad(`format ${JSON.stringify(m.format)} is not ${JSON.stringify(PACK_FORMAT)}`);
  if (m.formatVersion !== PACK_FORMAT_VERSION)
    throw bad(
      `format version ${JSON.stringify(m.formatVersion)} is not ${PACK_FORMAT_VERSION}; upgrade forkd to unpack it`,
    );
  const tag = manifestTag(m.tag, 'pack manifest tag');
  if (!Array.isArray(m.snapshots) || m.snapshots.length < 1 || m.snapshots.length > MAX_SNAPSHOTS_PER_PACK)
    throw bad(`snapshots must list 1 to ${MAX_SNAPSHOTS_PER_PACK} snapshots`);
  // Tags first, all of them, before anything else is looked at.
  const snapshots = (m.snapshots as unknown[]).map((s, i) => {
    const o = object(s, `snapshots[${i}]`);
    return { o, tag: manifestTag(o.tag, `pack manifest snapshots[${i}].tag`) };
  });
  const seen = new Set<string>();
  for (const { tag: t } of snapshots) {
    if (seen.has(t)) throw bad(`snapshot ${t} is listed twice`);
    seen.add(t);
  }
  if (snapshots[0]!.tag !== tag) throw bad(`the first snapshot is ${snapshots[0]!.tag}, not the pack's tag ${tag}`);
  return {
    format: PACK_FORMAT,
    formatVersion: PACK_FORMAT_VERSION,
    tag,
    createdAt: str(m.createdAt, 'createdAt'),
    forkdVersion: str(m.forkdVersion, 'forkdVersion'),
    snapshots: snapshots.map(({ o, tag: t }) => parseSnapshot(o, t)),
  };
}

function parseSnapshot(o: Record<string, unknown>, tag: string): PackedSnapshot {
  const parentTag = o.parentTag === null ? null : manifestTag(o.parentTag, `snapshot ${tag} parentTag`);
  if (parentTag === tag) throw bad(`snapshot ${tag} names itself as its parent`);
  if (o.accel !== 'kvm' && o.accel !== 'tcg') throw bad(`snapshot ${tag} accelerator ${JSON.stringify(o.accel)}`);
  const l = object(o.layout, `snapshot ${tag} layout`);
  if (
    typeof l.machine !== 'string' ||
    !Number.isInteger(l.memMiB) ||
    !Number.isInteger(l.vcpus) ||
    typeof l.rootDisk !== 'boolean' ||
    typeof l.mac !== 'string' ||
    (l.rtc !== undefined && typeof l.rtc !== 'boolean')
  )
    throw bad(`snapshot ${tag} has no valid device layout`);
  const files = object(o.files, `snapshot ${tag} files`);
  const out: Record<string, FileDigest> = {};
  for (const [name, d] of Object.entries(files)) {
    if (!SNAPSHOT_FILE_NAMES.includes(name))
      throw bad(`snapshot ${tag} declares a file ${JSON.stringify(name.slice(0, 80))} that snapshots do not have`);
    const digest = object(d, `snapshot ${tag} ${name}`);
    if (typeof digest.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(digest.sha256))
      throw bad(`snapshot ${tag} ${name} has no valid sha256`);
    if (!Number.isSafeInteger(digest.size) || (digest.size as number) < 0)
      throw bad(`snapshot ${tag} ${name} has no valid size`);
    out[name] = { sha256: digest.sha256, size: digest.size as number };
  }
  for (const name of REQUIRED_FILES) if (!out[name]) throw bad(`snapshot ${tag} lists no ${name}`);
  if (l.rootDisk === true && !out[SNAPSHOT_FILES.rootDisk])
    throw bad(`snapshot ${tag} has a root disk but lists no rootfs.ext4`);
  return {
    tag,
    parentTag,
    createdAt: str(o.createdAt, `snapshot ${tag} createdAt`),
    qemuVersion: str(o.qemuVersion, `snapshot ${tag} qemuVersion`),
    accel: o.accel,
    layout: {
      machine: l.machine as DeviceLayout['machine'],
      memMiB: l.memMiB as number,
      vcpus: l.vcpus as number,
      rootDisk: l.rootDisk,
      mac: l.mac,
      ...(l.rtc === true ? { rtc: true } : {}),
    },
    imageId: str(o.imageId, `snapshot ${tag} imageId`),
    files: out,
  };
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length > 200 || /[^\x20-\x7e]/.test(v))
    throw bad(`${what} is not a short printable string`);
  return v;
}
