// The wire contract's numbers, in one place: the ranges and defaults of request fields that
// the API schema publishes (api/openapi.ts), the daemon enforces (core, host), and the CLI, the
// MCP tools and the SDK check or fill in before they send. Pure constants, below every layer.
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
