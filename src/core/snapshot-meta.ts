// snapshot.json: everything needed to restore a snapshot, and to refuse to restore it where
// it cannot work (another QEMU, machine, accelerator or device layout).
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ForkdError, errnoOf } from '../lib/errors.js';
import { sha256File } from '../lib/hash.js';
import { isValidTag } from '../lib/tag.js';
import { AGENT_PROTOCOL_VERSION } from '../lib/version.js';
import type { DeviceLayout, Accel } from '../vmm/qemu-args.js';
import type { FileDigest } from '../image/manifest.js';
import { SNAPSHOT_FILES } from './paths.js';

export const SNAPSHOT_FORMAT_VERSION = 1;

export interface SnapshotMeta {
  formatVersion: number;
  tag: string;
  createdAt: string;
  forkdVersion: string;
  /** The guest agent's protocol inside the snapshot (docs/PROTOCOL.md); absent = 1, the Node.js agent. */
  agentProtocol: number;
  qemuVersion: string;
  accel: Accel;
  layout: DeviceLayout;
  kernelCmdline: string;
  image: { name: string; id: string; hasPython: boolean; pythonPreload: string[] };
  /** Digests of every file in the snapshot dir except snapshot.json. memory.bin: size only at fork time. */
  files: Record<string, FileDigest>;
  warmup: string[];
  parentTag: string | null;
  branchedFrom: string | null;
}

/** What this host would produce for the same snapshot; compared before a restore. */
export interface HostProfile {
  qemuVersion: string;
  accel: Accel;
}

export async function readSnapshotMeta(dir: string, tag: string): Promise<SnapshotMeta> {
  const path = join(dir, SNAPSHOT_FILES.meta);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT')
      throw new ForkdError(
        'not_found',
        `snapshot ${tag} not found (no ${path}); list snapshots with: forkd snapshot ls`,
      );
    throw new ForkdError('corrupt_snapshot', `snapshot ${tag}: cannot read ${path}: ${String(err)}`, { cause: err });
  }
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch {
    throw new ForkdError(
      'corrupt_snapshot',
      `snapshot ${tag}: ${path} is not valid JSON; delete it with: forkd snapshot rm ${tag}`,
    );
  }
  return validateMeta(meta, tag, path);
}

function validateMeta(meta: unknown, tag: string, path: string): SnapshotMeta {
  const m = meta as Partial<SnapshotMeta> | null;
  const bad = (what: string): ForkdError =>
    new ForkdError('corrupt_snapshot', `snapshot ${tag}: ${path} ${what}; delete it with: forkd snapshot rm ${tag}`);
  if (typeof m !== 'object' || m === null) throw bad('is not an object');
  if (m.formatVersion !== SNAPSHOT_FORMAT_VERSION)
    throw bad(`has format version ${String(m.formatVersion)}, expected ${SNAPSHOT_FORMAT_VERSION}`);
  if (m.tag !== tag || !isValidTag(m.tag)) throw bad(`names tag ${JSON.stringify(m.tag)}`);
  if (m.agentProtocol !== AGENT_PROTOCOL_VERSION) {
    // The agent lives in the snapshot's RAM: a child would wake up speaking the old protocol.
    throw new ForkdError(
      'incompatible_snapshot',
      `snapshot ${tag} holds a guest agent speaking protocol ${String(m.agentProtocol ?? 1)}${m.agentProtocol === undefined ? ' (the Node.js agent)' : ''}; this forkd speaks ${AGENT_PROTOCOL_VERSION}: re-create the snapshot (forkd snapshot create --tag ${tag}, or POST /v1/snapshots) from a rebuilt image`,
    );
  }
  const l = m.layout;
  if (
    !l ||
    l.machine !== 'microvm' ||
    !Number.isInteger(l.memMiB) ||
    !Number.isInteger(l.vcpus) ||
    typeof l.rootDisk !== 'boolean' ||
    typeof l.mac !== 'string' ||
    (l.rtc !== undefined && typeof l.rtc !== 'boolean')
  ) {
    throw bad('has no valid device layout');
  }
  if (m.accel !== 'kvm' && m.accel !== 'tcg') throw bad('has no valid accelerator');
  if (
    typeof m.files !== 'object' ||
    m.files === null ||
    !m.files[SNAPSHOT_FILES.memory] ||
    !m.files[SNAPSHOT_FILES.vmstate]
  )
    throw bad('lists no memory.bin or vmstate');
  return m as SnapshotMeta;
}

/** Differences between where a snapshot was made and this host, as readable lines. */
export function compatibilityProblems(meta: SnapshotMeta, host: HostProfile): string[] {
  const problems: string[] = [];
  if (meta.accel !== host.accel) problems.push(`accelerator: snapshot ${meta.accel}, this host ${host.accel}`);
  if (meta.qemuVersion !== host.qemuVersion)
    problems.push(`QEMU version: snapshot ${meta.qemuVersion}, this host ${host.qemuVersion}`);
  return problems;
}

export function assertCompatible(meta: SnapshotMeta, host: HostProfile): void {
  const problems = compatibilityProblems(meta, host);
  if (problems.length > 0) {
    throw new ForkdError(
      'incompatible_snapshot',
      `snapshot ${meta.tag} cannot be restored on this host: ${problems.join('; ')}. Re-create it here with: forkd snapshot create --tag ${meta.tag}`,
    );
  }
}

/**
 * Integrity check before every fork: every file present with its recorded size, the small
 * vmstate with its recorded sha256, and memory.bin unchanged since its sha256 was last checked
 * (see verifyMemory).
 */
export async function verifySnapshotFiles(dir: string, meta: SnapshotMeta): Promise<void> {
  for (const [name, digest] of Object.entries(meta.files)) {
    const path = join(dir, name);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      throw new ForkdError(
        'corrupt_snapshot',
        `snapshot ${meta.tag}: ${name} is missing (${path}); re-create the snapshot or delete it with: forkd snapshot rm ${meta.tag}`,
      );
    }
    if (size !== digest.size) {
      throw new ForkdError(
        'corrupt_snapshot',
        `snapshot ${meta.tag}: ${name} is ${size} bytes, expected ${digest.size}; the snapshot is damaged: re-create it or delete it with: forkd snapshot rm ${meta.tag}`,
      );
    }
  }
  await verifyMemory(dir, meta);
  const vmstate = meta.files[SNAPSHOT_FILES.vmstate]!;
  const actual = await sha256File(join(dir, SNAPSHOT_FILES.vmstate));
  if (actual !== vmstate.sha256) {
    throw new ForkdError(
      'corrupt_snapshot',
      `snapshot ${meta.tag}: vmstate sha256 ${actual.slice(0, 12)}... does not match the recorded ${vmstate.sha256.slice(0, 12)}...; the snapshot is damaged: re-create it or delete it with: forkd snapshot rm ${meta.tag}`,
    );
  }
}

/**
 * Beside memory.bin: the stat (device, inode, size, mtime, ctime in ns) of the memory.bin whose
 * sha256 was last found equal to the recorded one. A same-size change of memory.bin passed the
 * size check and was mapped by every later child (issue 14: "memory.bin changed under a
 * snapshot: refused before any child maps it"); hashing it before every fork costs seconds.
 * Any write, truncate, chmod, chown or replacement changes the ctime (which no user can set),
 * so while the stat matches, the bytes are the ones hashed; when it does not, the file is
 * hashed again, and refused if it differs.
 */
export const MEMORY_STAMP_FILE = '.memory-verified';

interface MemoryStamp {
  sha256: string;
  stat: string;
}

async function memoryStat(path: string): Promise<string> {
  const st = await stat(path, { bigint: true });
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * Record that memory.bin in `dir` has `sha256` (just computed or verified). Best effort: a
 * missing stamp only costs the next fork a hash. Call it after the file's last chmod/chown.
 */
export async function recordMemoryVerified(dir: string, sha256: string, statBefore?: string): Promise<void> {
  try {
    // The stat taken before hashing, when given: a change during the hash then fails the next match.
    const st = statBefore ?? (await memoryStat(join(dir, SNAPSHOT_FILES.memory)));
    const stamp: MemoryStamp = { sha256, stat: st };
    await writeFile(join(dir, MEMORY_STAMP_FILE), `${JSON.stringify(stamp)}\n`, { mode: 0o644 });
  } catch {
    /* read-only data dir, or another user's: hashed again next time */
  }
}

async function verifyMemory(dir: string, meta: SnapshotMeta): Promise<void> {
  const recorded = meta.files[SNAPSHOT_FILES.memory];
  if (!recorded) return;
  const path = join(dir, SNAPSHOT_FILES.memory);
  const now = await memoryStat(path);
  const stamp = await readFile(join(dir, MEMORY_STAMP_FILE), 'utf8')
    .then((t) => JSON.parse(t) as Partial<MemoryStamp>)
    .catch(() => undefined); // no stamp or a torn one: fall back to hashing the whole file below
  if (stamp?.sha256 === recorded.sha256 && stamp.stat === now) return;
  const actual = await sha256File(path);
  if (actual !== recorded.sha256) {
    throw new ForkdError(
      'corrupt_snapshot',
      `snapshot ${meta.tag}: memory.bin sha256 ${actual.slice(0, 12)}... does not match the recorded ${recorded.sha256.slice(0, 12)}... (it changed after the snapshot was made); the snapshot is damaged: re-create it or delete it with: forkd snapshot rm ${meta.tag}`,
    );
  }
  await recordMemoryVerified(dir, actual, now);
}
