// The camelCase shapes `Sandbox` answers with (E2B's names where E2B has the concept), and
// the conversions from the API's snake_case wire types (types.ts, which `Controller` returns).
import { ForkdApiError } from './errors.js';
import type { ApiSandbox, EgressPolicy, FileEntry, SandboxState } from './types.js';
import { TTL_SECS_RANGE } from './contract.js';

/** A sandbox, as `Sandbox.list`, `getInfo` and `Sandbox.getInfo` give it. */
export interface SandboxInfo {
  sandboxId: string;
  /** The snapshot tag it was restored from. */
  snapshot: string;
  /** E2B's name for the same: the snapshot tag. */
  templateId: string;
  state: SandboxState;
  metadata: Record<string, string>;
  startedAt: Date;
  /** When it expires (its lifetime, `timeoutMs`); null: it lives until killed. */
  endAt: Date | null;
  pid: number | null;
  accel: string | null;
  memoryLimitMiB: number | null;
  cpuLimit: number | null;
  pidsLimit: number | null;
  perChildNetns: boolean;
  netns: string | null;
  egress: EgressPolicy | null;
  /** Why it is stopped or failed. */
  reason: string | null;
  /** Through a gateway: the node that runs it. */
  node?: string;
}

export type FileType = 'file' | 'dir' | 'symlink' | 'other';

/** A file system entry (E2B's EntryInfo without owner and group, which the agent does not report). */
export interface EntryInfo {
  name: string;
  type: FileType;
  path: string;
  size: number;
  /** st_mode: type and permission bits. */
  mode: number;
  /** The permission bits as `rwxr-xr-x`. */
  permissions: string;
  modifiedTime: Date;
}

/** What `files.write` answers (E2B's WriteInfo, plus the size and sha256 the guest checked). */
export interface WriteInfo {
  name: string;
  type: 'file';
  path: string;
  size: number;
  sha256: string;
}

export function sandboxInfoOf(s: ApiSandbox): SandboxInfo {
  return {
    sandboxId: s.id,
    snapshot: s.snapshot_tag,
    templateId: s.snapshot_tag,
    state: s.state,
    metadata: s.metadata,
    startedAt: new Date(s.created_at),
    endAt: s.expires_at === null ? null : new Date(s.expires_at),
    pid: s.pid,
    accel: s.accel,
    memoryLimitMiB: s.memory_limit_mib,
    cpuLimit: s.cpu_limit,
    pidsLimit: s.pids_limit,
    perChildNetns: s.per_child_netns,
    netns: s.netns,
    egress: s.egress,
    reason: s.reason,
    ...(s.node !== undefined ? { node: s.node } : {}),
  };
}

export function entryInfoOf(e: FileEntry, path: string): EntryInfo {
  return {
    name: e.name,
    type: e.type as FileType,
    path,
    size: e.size,
    mode: e.mode,
    permissions: permissionString(e.mode),
    modifiedTime: new Date(e.mtime_ms),
  };
}

function permissionString(mode: number): string {
  const rwx = 'rwxrwxrwx';
  let out = '';
  for (let i = 0; i < 9; i++) out += mode & (1 << (8 - i)) ? rwx[i] : '-';
  return out;
}

/** The largest lifetime the daemon takes (ttl_secs). */
export const MAX_LIFETIME_MS = TTL_SECS_RANGE.max * 1000;

/**
 * A lifetime in ms as the API's ttl_secs (rounded up to whole seconds); 0 means none when
 * `zeroIsNone`. Checked here so a bad value fails before any request, naming the option.
 */
export function ttlSecsOf(ms: number, what: string, zeroIsNone: boolean): number | undefined {
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_LIFETIME_MS || (ms === 0 && !zeroIsNone))
    throw new ForkdApiError(
      'invalid_argument',
      0,
      `${what} must be ${zeroIsNone ? '0 (no expiry) or ' : ''}1..${MAX_LIFETIME_MS} ms, got ${String(ms)}`,
    );
  return ms === 0 ? undefined : Math.max(1, Math.ceil(ms / 1000));
}
