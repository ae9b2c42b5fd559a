// Ranges of a sandbox's isolation options, part of the wire contract: host/ enforces them
// (cgroups.ts, nftables.ts), api/ publishes them in the OpenAPI schema, cli/ checks its flags
// against them. Pure constants live here, below every layer that needs them.

/** QEMU needs a handful of threads (main, RCU, vCPU, I/O workers, ...); below this it cannot run. */
export const MIN_PIDS_LIMIT = 16;

export const LIMIT_RANGES = {
  memoryMiB: { min: 64, max: 1_048_576 },
  /** Fraction of one CPU: 0.01 (1 ms per 100 ms period) .. 1024 CPUs. */
  cpuLimit: { min: 0.01, max: 1024 },
  pidsLimit: { min: MIN_PIDS_LIMIT, max: 4_194_304 },
} as const;

/** Most CIDRs an egress allow-list may name. */
export const MAX_ALLOW_CIDRS = 256;
