// Core objects -> wire shapes (snake_case, as the OpenAPI document says).
import type { ExecResult } from '../agent/client.js';
import type { FileEntry, ResultOf } from '../protocol/index.js';
import type { SnapshotView } from '../core/controller/snapshots.js';
import type { SandboxRow } from '../core/state/store.js';

export const NOT_ENFORCED = {
  memory:
    'memory_limit_mib is recorded but NOT enforced yet: per-sandbox cgroup limits arrive with the isolation issue',
  netns:
    'per_child_netns is recorded but NOT enforced yet: sandboxes get no network namespace until the isolation issue lands',
} as const;

export function sandboxWarnings(s: { memoryLimitMiB: number | null; perChildNetns: boolean }): string[] {
  return [
    ...(s.memoryLimitMiB !== null ? [NOT_ENFORCED.memory] : []),
    ...(s.perChildNetns ? [NOT_ENFORCED.netns] : []),
  ];
}

export function sandboxJson(row: SandboxRow): Record<string, unknown> {
  return {
    id: row.id,
    snapshot_tag: row.snapshotTag,
    state: row.state,
    pid: row.pid,
    created_at: row.createdAt,
    expires_at: row.expiresAt,
    accel: row.accel,
    memory_limit_mib: row.memoryLimitMiB,
    per_child_netns: row.perChildNetns,
    netns: null,
    metadata: row.metadata,
    reason: row.reason,
    warnings: sandboxWarnings(row),
  };
}

export function snapshotJson(v: SnapshotView): Record<string, unknown> {
  return {
    tag: v.tag,
    status: v.status,
    created_at: v.createdAt,
    error: v.error,
    image: v.meta?.image.name ?? null,
    mem_mib: v.meta?.layout.memMiB ?? null,
    vcpus: v.meta?.layout.vcpus ?? null,
    accel: v.meta?.accel ?? null,
    qemu_version: v.meta?.qemuVersion ?? null,
    logical_bytes: v.logicalBytes,
    disk_bytes: v.diskBytes,
    parent_tag: v.parentTag,
    branched_from: v.branchedFrom,
    ancestors: v.ancestors,
    dependents: v.dependents,
    in_use_by: v.inUseBy,
  };
}

export function execJson(r: ExecResult): Record<string, unknown> {
  return {
    exit_code: r.exitCode,
    signal: r.signal,
    stdout: r.stdout.toString('utf8'),
    stderr: r.stderr.toString('utf8'),
    truncated: r.truncated,
    timed_out: r.timedOut,
    duration_ms: r.durationMs,
  };
}

export function evalJson(r: ResultOf<'eval'>): Record<string, unknown> {
  return { value: r.value ?? null, stdout: r.stdout, stderr: r.stderr, truncated: r.truncated, error: r.error ?? null };
}

export function fileEntryJson(e: FileEntry): Record<string, unknown> {
  return { name: e.name, type: e.type, size: e.size, mode: e.mode, mtime_ms: e.mtimeMs };
}
