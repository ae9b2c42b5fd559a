// Wire types of the forkd-controller REST API v1, written by hand to match the OpenAPI
// document (src/api/openapi.ts, docs/openapi.json). The SDK imports nothing else of forkd, so
// it can be used without the daemon's code; test/unit/sdk-types.test.ts keeps the two in step.

export type {
  BranchBody,
  CreateSandboxesBody,
  CreateSnapshotBody,
  EgressPolicy,
  EvalBody,
  EvalLanguage,
  ExecBody,
} from './contract.js';
import type { EgressPolicy } from './contract.js';

export type ApiErrorCode =
  | 'invalid_argument'
  | 'invalid_tag'
  | 'invalid_id'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'request_timeout'
  | 'conflict'
  | 'already_exists'
  | 'invalid_state'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'headers_too_large'
  | 'incompatible_snapshot'
  | 'corrupt_snapshot'
  | 'busy'
  | 'unavailable'
  | 'audit_unavailable'
  | 'feature_unavailable'
  | 'insufficient_storage'
  | 'timeout'
  | 'boot_failed'
  | 'vmm_error'
  | 'agent_error'
  | 'host_error'
  | 'internal';

/** Codes the SDK itself gives when no API answer arrived, and `exit_error` (CommandExitError). */
export type ClientErrorCode = 'unreachable' | 'aborted' | 'client_timeout' | 'protocol_error' | 'exit_error';

export interface ErrorBody {
  error: string;
  code: ApiErrorCode;
  request_id?: string;
}

export interface VersionInfo {
  version: string;
  api: 'v1';
  node: string;
  qemu: string;
  accel: 'kvm' | 'tcg';
}

export type SnapshotStatus = 'writing' | 'ready' | 'failed';

export interface SnapshotInfo {
  tag: string;
  status: SnapshotStatus;
  created_at: string;
  error: string | null;
  image: string | null;
  mem_mib: number | null;
  vcpus: number | null;
  accel: 'kvm' | 'tcg' | null;
  qemu_version: string | null;
  logical_bytes: number;
  disk_bytes: number;
  parent_tag: string | null;
  branched_from: string | null;
  ancestors: string[];
  dependents: string[];
  in_use_by: string[];
  /** Through a gateway: the nodes that hold it. */
  nodes?: string[];
}

/** `lost`: listed by a gateway for a node it cannot reach. */
export type SandboxState = 'creating' | 'running' | 'stopping' | 'stopped' | 'failed' | 'lost';

/** A sandbox as the API answers it (snake_case); `Sandbox` gives the camelCase `SandboxInfo`. */
export interface ApiSandbox {
  id: string;
  snapshot_tag: string;
  state: SandboxState;
  pid: number | null;
  created_at: string;
  expires_at: string | null;
  accel: string | null;
  memory_limit_mib: number | null;
  cpu_limit: number | null;
  pids_limit: number | null;
  per_child_netns: boolean;
  netns: string | null;
  /** The policy in force (the daemon's default when the spawn named none); null without a namespace. */
  egress: EgressPolicy | null;
  metadata: Record<string, string>;
  reason: string | null;
  warnings: string[];
  /** Through a gateway: the node that runs it. */
  node?: string;
}

export interface CreateSandboxesResult {
  sandboxes: ApiSandbox[];
  warnings: string[];
}

export interface ExecResult {
  exit_code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timed_out: boolean;
  duration_ms: number;
}

export type ExecStreamLine =
  | { type: 'stdout' | 'stderr'; data: string }
  | {
      type: 'exit';
      exit_code: number | null;
      signal: string | null;
      truncated: boolean;
      timed_out: boolean;
      duration_ms: number;
    }
  | { type: 'error'; error: string; code: ApiErrorCode };

export interface EvalResult {
  value: unknown;
  stdout: string;
  stderr: string;
  truncated: boolean;
  error: null | { name: string; message: string; stack?: string | null };
}

export interface PingResult {
  ok: true;
  uptime_ms: number;
  agent_version: string;
  latency_ms: number;
}

export interface WriteFileResult {
  path: string;
  size: number;
  sha256: string;
}

export interface FileEntry {
  name: string;
  type: string;
  size: number;
  mode: number;
  mtime_ms: number;
}

export interface FileInfo extends FileEntry {
  path: string;
}

export interface MadeDir {
  path: string;
  created: boolean;
}

export interface FileList {
  path: string;
  entries: FileEntry[];
  truncated: boolean;
}

export interface BranchResult {
  tag: string;
  sandbox_id: string;
  status: 'writing' | 'ready';
  /** How long the source was paused. */
  pause_ms: number;
  /** Request start until the source ran again. */
  live_ms: number;
  total_ms: number;
  /** Migration stream bytes. */
  bytes: number;
  memory_bytes?: number;
  snapshot?: SnapshotInfo;
}
