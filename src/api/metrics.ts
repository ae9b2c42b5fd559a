// Prometheus text exposition (format 0.0.4) without a client library: a few counters, gauges
// read at scrape time, and fixed-bucket histograms. Label values are escaped per the format.

type Labels = Record<string, string>;

const LATENCY_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

class Counter {
  readonly #values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    this.#values.set(key, (this.#values.get(key) ?? 0) + by);
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.#values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.#values) lines.push(`${this.name}${k} ${v}`);
    return lines;
  }
}

class Histogram {
  readonly #counts = LATENCY_BUCKETS_S.map(() => 0);
  #sum = 0;
  #count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  observe(seconds: number): void {
    LATENCY_BUCKETS_S.forEach((b, i) => {
      if (seconds <= b) this.#counts[i]!++;
    });
    this.#sum += seconds;
    this.#count++;
  }

  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} histogram`,
      ...LATENCY_BUCKETS_S.map((b, i) => `${this.name}_bucket{le="${b}"} ${this.#counts[i]}`),
      `${this.name}_bucket{le="+Inf"} ${this.#count}`,
      `${this.name}_sum ${this.#sum}`,
      `${this.name}_count ${this.#count}`,
    ];
  }
}

export interface GaugeSource {
  snapshots(): Promise<Record<string, number>>;
  sandboxes(): Record<string, number>;
  activeSandboxes(): number;
  branchesInFlight(): number;
  branchConcurrencyCap(): number;
  buildInfo(): Labels;
  /** Parked VMMs per snapshot, and spawned children that found one (hits) or not (misses). */
  parked?(): { parked: Record<string, number>; hits: number; misses: number };
}

export class Metrics {
  readonly httpRequests = new Counter(
    'forkd_http_requests_total',
    'HTTP requests by route template, method and status.',
  );
  readonly authFailures = new Counter(
    'forkd_auth_failures_total',
    'Requests refused for a missing or wrong bearer token.',
  );
  readonly spawnLatency = new Histogram(
    'forkd_spawn_latency_seconds',
    'From POST /v1/sandboxes until a child answered its agent (includes waiting for a restore slot).',
  );
  readonly restoreLatency = new Histogram(
    'forkd_restore_latency_seconds',
    'QEMU migrate-incoming of one child until its guest runs again.',
  );

  constructor(private readonly source: GaugeSource) {}

  async render(): Promise<string> {
    const s = this.source;
    const gauge = (name: string, help: string, values: [Labels, number][]): string[] => [
      `# HELP ${name} ${help}`,
      `# TYPE ${name} gauge`,
      ...values.map(([l, v]) => `${name}${labelText(l)} ${v}`),
    ];
    const snaps = await s.snapshots();
    const lines = [
      ...gauge(
        'forkd_snapshots',
        'Snapshots by status (ready on disk, writing, failed).',
        Object.entries(snaps).map(([status, n]) => [{ status }, n]),
      ),
      ...gauge(
        'forkd_sandboxes',
        'Sandboxes known to the daemon by state.',
        Object.entries(s.sandboxes()).map(([state, n]) => [{ state }, n]),
      ),
      ...gauge('forkd_sandboxes_active', 'Sandboxes creating, running or stopping.', [[{}, s.activeSandboxes()]]),
      ...gauge('forkd_branches_in_flight', 'BRANCH operations in progress (admitted until ready or failed).', [
        [{}, s.branchesInFlight()],
      ]),
      ...gauge('forkd_branch_concurrency_cap', 'Configured maximum of concurrent BRANCH operations.', [
        [{}, s.branchConcurrencyCap()],
      ]),
      ...gauge('forkd_build_info', 'Build facts of this daemon; always 1.', [[s.buildInfo(), 1]]),
      ...parkedLines(s.parked?.(), gauge),
      ...this.spawnLatency.render(),
      ...this.restoreLatency.render(),
      ...this.httpRequests.render(),
      ...this.authFailures.render(),
    ];
    return `${lines.join('\n')}\n`;
  }
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${entries.map(([k, v]) => `${k}="${esc(v)}"`).join(',')}}`;
}

/** The parked-VMM pool (core/parked-vmms.ts): a gauge per snapshot, two counters of spawned children. */
function parkedLines(
  p: { parked: Record<string, number>; hits: number; misses: number } | undefined,
  gauge: (name: string, help: string, values: [Labels, number][]) => string[],
): string[] {
  if (!p) return [];
  return [
    ...gauge(
      'forkd_parked_vmms',
      'Child QEMUs started ahead of a spawn, waiting to restore, by snapshot (--parked-vmms).',
      Object.entries(p.parked).map(([snapshot, n]): [Labels, number] => [{ snapshot }, n]),
    ),
    '# HELP forkd_parked_vmm_hits_total Spawned children that took a parked VMM.',
    '# TYPE forkd_parked_vmm_hits_total counter',
    `forkd_parked_vmm_hits_total ${p.hits}`,
    '# HELP forkd_parked_vmm_misses_total Spawned children (without isolation) that found no parked VMM.',
    '# TYPE forkd_parked_vmm_misses_total counter',
    `forkd_parked_vmm_misses_total ${p.misses}`,
  ];
}
