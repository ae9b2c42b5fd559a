// The wire contract, in one place: the request bodies and the ranges and defaults of their
// fields, which the API schema publishes (src/api/openapi.ts), the daemon enforces (core, host),
// and the CLI, the MCP tools and this SDK check or fill in before they send. It lives in the SDK
// package because the SDK is installed alone; the daemon imports it as `forkd/contract`
// (src/lib/contract.ts re-exports it below every layer). Types and constants only.
// A field's range changes here or nowhere.

/** QEMU needs a handful of threads (main, RCU, vCPU, I/O workers, ...); below this it cannot run. */
export const MIN_PIDS_LIMIT = 16;

/** A sandbox's isolation options (`memory_limit_mib`, `cpu_limit`, `pids_limit`). */
export const LIMIT_RANGES = {
  memoryMiB: { min: 64, max: 1_048_576 },
  /** Fraction of one CPU: 0.01 (1 ms per 100 ms period) .. 1024 CPUs. */
  cpuLimit: { min: 0.01, max: 1024 },
  pidsLimit: { min: MIN_PIDS_LIMIT, max: 4_194_304 },
} as const;

/** Most CIDRs an egress allow-list may name. */
export const MAX_ALLOW_CIDRS = 256;

/** Children per `POST /v1/sandboxes` (`n`) and per local fork. */
export const FORK_N_RANGE = { min: 1, max: 1000, default: 1 } as const;

/** A sandbox's lifetime (`ttl_secs`): at most a week. */
export const TTL_SECS_RANGE = { min: 1, max: 7 * 24 * 3600 } as const;

/** `metadata` of a sandbox: entries, key length (keys are [A-Za-z0-9_.-]), value length. */
export const METADATA_LIMITS = { entries: 32, keyChars: 64, valueChars: 1024 } as const;

/** An exec's `timeout_secs`: the whole process group is killed at it. */
export const EXEC_TIMEOUT_SECS = { min: 1, max: 86_400, default: 60 } as const;

/** An interactive process's `timeout_secs`: 0 = none (the default). */
export const PROCESS_TIMEOUT_SECS = { min: 0, max: 86_400, default: 0 } as const;

/** Bytes one process input request carries (base64 in JSON). */
export const MAX_PROCESS_INPUT_BYTES = 256 * 1024;

/** An eval's `timeout_secs`. */
export const EVAL_TIMEOUT_SECS = { min: 1, max: 3600, default: 30 } as const;

/** A snapshot build's guest RAM (`mem_mib`) and vCPUs (`vcpus`). */
export const MEM_MIB_RANGE = { min: 128, max: 16384, default: 512 } as const;
export const VCPU_RANGE = { min: 1, max: 16, default: 1 } as const;

/** A snapshot build's `boot_wait_secs`: how long the parent may take to answer. */
export const BOOT_WAIT_SECS = { min: 1, max: 60, default: 60 } as const;

/** A BRANCH's `downtime_ms`: the longest pause of the source in a live (pre-copy) copy. */
export const DOWNTIME_MS_RANGE = { min: 1, max: 1000, default: 20 } as const;

/** What the SDK and the E2B surface give a sandbox whose creator names no lifetime (E2B's default); the REST API itself sets none. */
export const DEFAULT_LIFETIME_SECS = 300;

// ---- Request bodies, as a client sends them (snake_case; absent fields take the defaults above) ----

/**
 * Egress of a sandbox with its own network namespace: everything, nothing, or only these IPv4
 * CIDRs (a.b.c.d/n, no host bits set, at most 256). The link-local range (cloud metadata), the
 * host and other sandboxes stay blocked whatever it says.
 */
export type EgressPolicy = 'allow' | 'deny' | { allow: string[] };

/** `POST /v1/snapshots`. */
export interface CreateSnapshotBody {
  tag: string;
  image?: string;
  mem_mib?: number;
  vcpus?: number;
  warmup?: string[];
  boot_wait_secs?: number;
}

/** `POST /v1/sandboxes`. */
export interface CreateSandboxesBody {
  snapshot_tag: string;
  n?: number;
  ttl_secs?: number;
  metadata?: Record<string, string>;
  memory_limit_mib?: number;
  /** CPUs (0.5 = half of one): the sandbox cgroup's CPU quota. */
  cpu_limit?: number;
  /** pids.max of the sandbox cgroup (QEMU's threads; >= 16). */
  pids_limit?: number;
  per_child_netns?: boolean;
  /** Needs per_child_netns: true. Default: the daemon's --default-egress (deny unless set). */
  egress?: EgressPolicy;
}

/** `POST /v1/sandboxes/{id}/exec` and `.../exec/stream`: exactly one of `args` and `cmd`. */
export interface ExecBody {
  args?: string[];
  cmd?: string;
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string;
  timeout_secs?: number;
}

export type EvalLanguage = 'js' | 'python';

/** `POST /v1/sandboxes/{id}/eval`. */
export interface EvalBody {
  code: string;
  language?: EvalLanguage;
  timeout_secs?: number;
}

/** `POST /v1/sandboxes/{id}/branch`. */
export interface BranchBody {
  /** Output tag; default `branch-<sandbox id>-<n>`. */
  tag?: string;
  /** Default true: answer once the snapshot is ready; false: once the source runs again. */
  wait?: boolean;
  /** Target pause of the source for the final stop-and-copy. */
  downtime_ms?: number;
}

/** A body as the daemon's handler sees it: validated, the schema's defaults filled in for `K`. */
export type Defaulted<T, K extends keyof T> = T & Required<Pick<T, K>>;
