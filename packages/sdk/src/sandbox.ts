// `Sandbox`, in the shape of E2B's js-sdk: create (a lifetime, 5 min by default), connect,
// list, kill, setTimeout, fork; commands, files, and forkd's own eval, branch and `await using`.
// A thin object over `Controller`; every answer camelCase (shapes.ts).
import { Commands } from './commands.js';
import { Pty } from './pty.js';
import { Controller } from './controller.js';
import { ForkdApiError } from './errors.js';
import { Filesystem } from './files.js';
import type { CallOptions } from './http.js';
import { sandboxInfoOf, ttlSecsOf, type SandboxInfo } from './shapes.js';
import type { ApiSandbox, BranchResult, EgressPolicy, EvalLanguage, EvalResult, SandboxState } from './types.js';
import { DEFAULT_LIFETIME_SECS } from './contract.js';

/** E2B's default sandbox lifetime. */
export const DEFAULT_SANDBOX_TIMEOUT_MS = DEFAULT_LIFETIME_SECS * 1000;

/** Where the daemon is and how long a call may take; or an existing Controller. */
export interface ConnectionOptions {
  /** `http://host:port`, `https://host:port` or `unix:/path`; default FORKD_URL, then http://127.0.0.1:8889. */
  url?: string | undefined;
  /** Bearer token; default FORKD_TOKEN. */
  token?: string | undefined;
  /** PEM CA to trust for an https daemon with a private CA. */
  ca?: string | Buffer | undefined;
  /** Bound of each HTTP call (ms); calls that restore or save VMs default to 10 min. */
  requestTimeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Reuse a Controller (its url/token/ca) instead of building one from these options. */
  controller?: Controller | undefined;
}

export interface SandboxCreateOptions extends ConnectionOptions {
  /** The lifetime (ms, default 5 min): the daemon stops the sandbox when it elapses; 0: none (it lives until killed). */
  timeoutMs?: number;
  /** Environment variables given to every `commands.run` of this Sandbox object (a run's `envs` win). */
  envs?: Record<string, string>;
  metadata?: Record<string, string>;
  memoryLimitMiB?: number;
  /** CPUs (0.5 = half of one): the sandbox cgroup's CPU quota. */
  cpuLimit?: number;
  /** pids.max of the sandbox cgroup (bounds QEMU's threads, not guest processes; >= 16). */
  pidsLimit?: number;
  perChildNetns?: boolean;
  /** Needs `perChildNetns: true`; default: the daemon's --default-egress (deny unless set). */
  egress?: EgressPolicy;
  /** The snapshot tag, in the object form `Sandbox.create({ snapshot })`. */
  snapshot?: string;
  /** E2B's name for `snapshot`. */
  template?: string;
  /** @deprecated the lifetime in seconds: use `timeoutMs`. */
  ttlSecs?: number;
}

export interface SandboxListOptions extends ConnectionOptions {
  query?: {
    /** Only sandboxes whose metadata has every one of these entries. */
    metadata?: Record<string, string>;
    /** Default ['running'] (E2B lists the live ones); forkd also has stopped, failed, ... */
    state?: SandboxState[];
    /** Only sandboxes of this snapshot tag. */
    snapshot?: string;
  };
}

export interface SandboxForkOptions extends ConnectionOptions {
  /** Children to start from one snapshot of the sandbox (default 1). */
  count?: number;
  /** Lifetime of each child (ms, default 5 min; 0: none). */
  timeoutMs?: number;
  /** Tag of the snapshot taken (BRANCH); default branch-<id>-<n>. */
  tag?: string;
  /** Environment variables for the children's Sandbox objects (default: the source's). */
  envs?: Record<string, string>;
}

/** E2B's SandboxPaginator: forkd answers in one page, so the first `nextItems()` has them all. */
export class SandboxPaginator {
  #done = false;
  constructor(private readonly fetch: () => Promise<SandboxInfo[]>) {}
  get hasNext(): boolean {
    return !this.#done;
  }
  async nextItems(): Promise<SandboxInfo[]> {
    if (this.#done) return [];
    const items = await this.fetch();
    this.#done = true;
    return items;
  }
}

const controllerOf = (o: ConnectionOptions): Controller =>
  o.controller ?? new Controller({ url: o.url, token: o.token, ca: o.ca, requestTimeoutMs: o.requestTimeoutMs });
const call = (o: { signal?: AbortSignal | undefined; requestTimeoutMs?: number | undefined }): CallOptions => ({
  signal: o.signal,
  timeoutMs: o.requestTimeoutMs,
});

export class Sandbox {
  readonly sandboxId: string;
  readonly controller: Controller;
  /** Environment variables of every `commands.run` here (from create's `envs`). */
  readonly envs: Record<string, string>;
  readonly commands: Commands;
  readonly files: Filesystem;
  /** Processes on a pseudo-terminal (E2B's `sandbox.pty`). */
  readonly pty: Pty;
  /** @deprecated the API's snake_case record as last fetched: use `getInfo()`. */
  info: ApiSandbox;

  private constructor(controller: Controller, info: ApiSandbox, envs: Record<string, string> = {}) {
    this.controller = controller;
    this.sandboxId = info.id;
    this.info = info;
    this.envs = { ...envs };
    this.commands = new Commands(controller.transport, info.id, this.envs);
    this.files = new Filesystem(controller.transport, info.id);
    this.pty = new Pty(controller.transport, info.id, this.envs);
  }

  /** @deprecated the old name of `sandboxId`. */
  get id(): string {
    return this.sandboxId;
  }

  /**
   * Restores a sandbox of the snapshot `snapshot` and answers once it runs. Its lifetime is
   * `timeoutMs` (default 5 min, as E2B's); `Sandbox.create({ snapshot, ... })` works too.
   */
  static create(snapshot: string, opts?: SandboxCreateOptions): Promise<Sandbox>;
  static create(opts: SandboxCreateOptions): Promise<Sandbox>;
  static async create(first: string | SandboxCreateOptions, rest: SandboxCreateOptions = {}): Promise<Sandbox> {
    const opts = typeof first === 'string' ? { ...rest, snapshot: first } : first;
    const snapshot = opts.snapshot ?? opts.template;
    if (!snapshot) throw new ForkdApiError('invalid_argument', 0, 'Sandbox.create needs a snapshot tag');
    if (opts.timeoutMs !== undefined && opts.ttlSecs !== undefined)
      throw new ForkdApiError(
        'invalid_argument',
        0,
        'give timeoutMs (the lifetime) or the deprecated ttlSecs, not both',
      );
    const ttlSecs =
      opts.ttlSecs ?? ttlSecsOf(opts.timeoutMs ?? DEFAULT_SANDBOX_TIMEOUT_MS, 'timeoutMs (the lifetime)', true);
    const controller = controllerOf(opts);
    const res = await controller.sandboxes.spawn(
      {
        snapshot_tag: snapshot,
        n: 1,
        ...(ttlSecs !== undefined ? { ttl_secs: ttlSecs } : {}),
        ...(opts.metadata !== undefined ? { metadata: opts.metadata } : {}),
        ...(opts.memoryLimitMiB !== undefined ? { memory_limit_mib: opts.memoryLimitMiB } : {}),
        ...(opts.cpuLimit !== undefined ? { cpu_limit: opts.cpuLimit } : {}),
        ...(opts.pidsLimit !== undefined ? { pids_limit: opts.pidsLimit } : {}),
        ...(opts.perChildNetns !== undefined ? { per_child_netns: opts.perChildNetns } : {}),
        ...(opts.egress !== undefined ? { egress: opts.egress } : {}),
      },
      call(opts),
    );
    const info = res.sandboxes[0];
    if (!info) throw new ForkdApiError('protocol_error', 201, 'the daemon created no sandbox');
    const sb = new Sandbox(controller, info, opts.envs);
    if (info.state !== 'running') {
      // Best effort: the daemon already holds it as failed; the boot failure below is the answer.
      await sb.kill().catch(() => undefined);
      throw new ForkdApiError(
        'boot_failed',
        201,
        `sandbox ${info.id} is ${info.state}: ${info.reason ?? 'no reason given'}`,
      );
    }
    return sb;
  }

  /** A Sandbox object for an existing sandbox (ForkdApiError not_found if there is none). */
  static async connect(
    sandboxId: string,
    opts: ConnectionOptions & { envs?: Record<string, string> } = {},
  ): Promise<Sandbox> {
    const controller = controllerOf(opts);
    return new Sandbox(controller, await controller.sandboxes.get(sandboxId, call(opts)), opts.envs);
  }

  /** Wraps sandboxes returned by `controller.sandboxes.spawn`. */
  static of(controller: Controller, info: ApiSandbox): Sandbox {
    return new Sandbox(controller, info);
  }

  /** Sandboxes, filtered by metadata, state (default running) and snapshot; one page. */
  static list(opts: SandboxListOptions = {}): SandboxPaginator {
    const q = opts.query ?? {};
    const states = q.state ?? ['running'];
    return new SandboxPaginator(async () => {
      const c = controllerOf(opts);
      // One state goes to the daemon as its filter; several are filtered here.
      const all = await c.sandboxes.list(
        {
          ...(q.snapshot !== undefined ? { snapshotTag: q.snapshot } : {}),
          ...(states.length === 1 ? { state: states[0] } : {}),
        },
        call(opts),
      );
      return all
        .filter((s) => states.includes(s.state))
        .filter((s) => Object.entries(q.metadata ?? {}).every(([k, v]) => s.metadata[k] === v))
        .map(sandboxInfoOf);
    });
  }

  /** Stops and removes it: true, or false when there was no such sandbox. */
  static async kill(sandboxId: string, opts: ConnectionOptions = {}): Promise<boolean> {
    try {
      await controllerOf(opts).sandboxes.kill(sandboxId, call(opts));
      return true;
    } catch (err) {
      if (err instanceof ForkdApiError && err.code === 'not_found') return false;
      throw err;
    }
  }

  /** Its lifetime from now (ms): longer or shorter than before; the daemon keeps it across a restart. */
  static async setTimeout(sandboxId: string, timeoutMs: number, opts: ConnectionOptions = {}): Promise<void> {
    await controllerOf(opts).sandboxes.setTtl(sandboxId, ttlSecsOf(timeoutMs, 'timeoutMs', false)!, call(opts));
  }

  static async getInfo(sandboxId: string, opts: ConnectionOptions = {}): Promise<SandboxInfo> {
    return sandboxInfoOf(await controllerOf(opts).sandboxes.get(sandboxId, call(opts)));
  }

  /** Forks `sandboxId`: see `fork()`. */
  static async fork(sandboxId: string, opts: SandboxForkOptions = {}): Promise<(Sandbox | Error)[]> {
    return (await Sandbox.connect(sandboxId, opts)).fork(opts);
  }

  async setTimeout(
    timeoutMs: number,
    opts: Pick<ConnectionOptions, 'signal' | 'requestTimeoutMs'> = {},
  ): Promise<void> {
    this.info = await this.controller.sandboxes.setTtl(
      this.sandboxId,
      ttlSecsOf(timeoutMs, 'timeoutMs', false)!,
      call(opts),
    );
  }

  async getInfo(opts: Pick<ConnectionOptions, 'signal' | 'requestTimeoutMs'> = {}): Promise<SandboxInfo> {
    this.info = await this.controller.sandboxes.get(this.sandboxId, call(opts));
    return sandboxInfoOf(this.info);
  }

  async isRunning(opts: Pick<ConnectionOptions, 'signal' | 'requestTimeoutMs'> = {}): Promise<boolean> {
    try {
      return (await this.getInfo(opts)).state === 'running';
    } catch (err) {
      if (err instanceof ForkdApiError && err.code === 'not_found') return false;
      throw err;
    }
  }

  /** @deprecated use `getInfo()` (camelCase); this refreshes and answers the snake_case record. */
  async refresh(o: CallOptions = {}): Promise<ApiSandbox> {
    this.info = await this.controller.sandboxes.get(this.sandboxId, o);
    return this.info;
  }

  /**
   * E2B's fork: one snapshot of this running sandbox (BRANCH: it keeps running), then `count`
   * children restored from it, each seeing this one's memory and files at that moment. One
   * entry per child: its Sandbox, or the Error that stopped it. The snapshot stays (tag in
   * each child's `getInfo().snapshot`); delete it once the children are gone.
   */
  async fork(opts: SandboxForkOptions = {}): Promise<(Sandbox | Error)[]> {
    const count = opts.count ?? 1;
    const ttlSecs = ttlSecsOf(opts.timeoutMs ?? DEFAULT_SANDBOX_TIMEOUT_MS, 'timeoutMs (the lifetime)', true);
    const b = await this.branch({
      ...(opts.tag !== undefined ? { tag: opts.tag } : {}),
      wait: true,
      signal: opts.signal,
    });
    const res = await this.controller.sandboxes.spawn(
      {
        snapshot_tag: b.tag,
        n: count,
        ...(ttlSecs !== undefined ? { ttl_secs: ttlSecs } : {}),
        metadata: this.info.metadata,
      },
      call(opts),
    );
    return res.sandboxes.map((info) =>
      info.state === 'running'
        ? new Sandbox(this.controller, info, opts.envs ?? this.envs)
        : new ForkdApiError(
            'boot_failed',
            201,
            `fork ${info.id} is ${info.state}: ${info.reason ?? 'no reason given'}`,
          ),
    );
  }

  /** Evaluates code in the guest's persistent JS context (default) or Python worker. */
  eval(
    code: string,
    opts: {
      language?: EvalLanguage;
      timeoutSecs?: number;
      signal?: AbortSignal;
      requestTimeoutMs?: number;
      timeoutMs?: number;
    } = {},
  ): Promise<EvalResult> {
    const timeoutSecs = opts.timeoutSecs ?? 30;
    return this.controller.transport.json({
      method: 'POST',
      path: `/v1/sandboxes/${encodeURIComponent(this.sandboxId)}/eval`,
      json: { code, language: opts.language ?? 'js', timeout_secs: timeoutSecs },
      signal: opts.signal,
      timeoutMs: opts.requestTimeoutMs ?? opts.timeoutMs ?? timeoutSecs * 1000 + 30_000,
    });
  }

  /** Saves this running sandbox as a new snapshot tag (BRANCH). */
  branch(
    opts: {
      tag?: string;
      wait?: boolean;
      downtimeMs?: number;
      signal?: AbortSignal;
      requestTimeoutMs?: number;
      timeoutMs?: number;
    } = {},
  ): Promise<BranchResult> {
    return this.controller.branch(
      this.sandboxId,
      {
        ...(opts.tag !== undefined ? { tag: opts.tag } : {}),
        ...(opts.wait !== undefined ? { wait: opts.wait } : {}),
        ...(opts.downtimeMs !== undefined ? { downtime_ms: opts.downtimeMs } : {}),
      },
      { signal: opts.signal, timeoutMs: opts.requestTimeoutMs ?? opts.timeoutMs },
    );
  }

  /** Stops the sandbox and removes it. Idempotent: a sandbox already gone is fine. */
  async kill(
    opts: Pick<ConnectionOptions, 'signal' | 'requestTimeoutMs'> & { timeoutMs?: number } = {},
  ): Promise<void> {
    try {
      await this.controller.sandboxes.kill(this.sandboxId, {
        signal: opts.signal,
        timeoutMs: opts.requestTimeoutMs ?? opts.timeoutMs,
      });
    } catch (err) {
      if (!(err instanceof ForkdApiError && err.code === 'not_found')) throw err;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}
