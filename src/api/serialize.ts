// Core objects -> wire shapes (snake_case, as the OpenAPI document says).
import type { EvalResult, ExecResult, FileEntry } from '../core/api-surface.js';
import type { SnapshotView } from '../core/controller/snapshots.js';
import type { SandboxRow } from '../core/state/store.js';
import { netnsName } from '../lib/ids.js';

/** Nothing requested at create time is silently ignored any more; kept for the wire shape. */
export function sandboxWarnings(_s: { memoryLimitMiB: number | null; perChildNetns: boolean }): string[] {
  return [];
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
    cpu_limit: row.cpuLimit,
    pids_limit: row.pidsLimit,
    per_child_netns: row.perChildNetns,
    netns: row.perChildNetns ? netnsName(row.id) : null,
    egress: row.perChildNetns ? row.egress : null,
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

export function evalJson(r: EvalResult): Record<string, unknown> {
  return { value: r.value ?? null, stdout: r.stdout, stderr: r.stderr, truncated: r.truncated, error: r.error ?? null };
}

export function fileEntryJson(e: FileEntry): Record<string, unknown> {
  return { name: e.name, type: e.type, size: e.size, mode: e.mode, mtime_ms: e.mtimeMs };
}
