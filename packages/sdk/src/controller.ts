// `Controller`: the daemon's snapshots and sandboxes, one method per route. Options win over
// FORKD_URL / FORKD_TOKEN; every method takes { signal, timeoutMs }.
import { sdkEnv } from './env.js';
import { ForkdApiError } from './errors.js';
import { Transport, type CallOptions } from './http.js';
import type {
  BranchBody,
  BranchResult,
  CreateSandboxesBody,
  CreateSandboxesResult,
  CreateSnapshotBody,
  ApiSandbox,
  SandboxState,
  SnapshotInfo,
  VersionInfo,
} from './types.js';

export const DEFAULT_URL = 'http://127.0.0.1:8889';
export const DEFAULT_TIMEOUT_MS = 120_000;

export interface ControllerOptions {
  /** `http://host:port`, `https://host:port` or `unix:/path`; default FORKD_URL, then http://127.0.0.1:8889. */
  url?: string | undefined;
  /** Bearer token; default FORKD_TOKEN. */
  token?: string | undefined;
  /** PEM CA to trust for an https daemon with a private CA. */
  ca?: string | Buffer | undefined;
  /** Default bound of each call (ms, default 120 000); long calls take their own. */
  requestTimeoutMs?: number | undefined;
  /** @deprecated the old name of `requestTimeoutMs` (on a Controller only: nothing else is bounded here). */
  timeoutMs?: number | undefined;
}

export interface WaitOptions extends CallOptions {
  /** Poll interval while waiting for a build (ms, default 500). */
  pollMs?: number;
  onProgress?: (s: SnapshotInfo) => void;
}

const enc = encodeURIComponent;

export class Controller {
  readonly transport: Transport;

  constructor(opts: ControllerOptions = {}) {
    const env = opts.url === undefined || opts.token === undefined ? sdkEnv() : { url: undefined, token: undefined };
    this.transport = new Transport({
      url: opts.url ?? env.url ?? DEFAULT_URL,
      token: opts.token ?? env.token,
      ca: opts.ca,
      timeoutMs: opts.requestTimeoutMs ?? opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    });
  }

  get url(): string {
    return this.transport.url;
  }

  version(o: CallOptions = {}): Promise<VersionInfo> {
    return this.transport.json({ method: 'GET', path: '/version', ...o });
  }

  readonly snapshots = {
    /** Starts a build (202, status "writing"); `waitForSnapshot` polls it to the end. */
    create: (body: CreateSnapshotBody, o: CallOptions = {}): Promise<SnapshotInfo> =>
      this.transport.json({ method: 'POST', path: '/v1/snapshots', json: body, ...o }),
    list: async (o: CallOptions = {}): Promise<SnapshotInfo[]> =>
      (await this.transport.json<{ snapshots: SnapshotInfo[] }>({ method: 'GET', path: '/v1/snapshots', ...o }))
        .snapshots,
    get: (tag: string, o: CallOptions = {}): Promise<SnapshotInfo> =>
      this.transport.json({ method: 'GET', path: `/v1/snapshots/${enc(tag)}`, ...o }),
    delete: async (tag: string, opts: CallOptions & { cascade?: boolean; force?: boolean } = {}): Promise<string[]> =>
      (
        await this.transport.json<{ deleted: string[] }>({
          method: 'DELETE',
          path: `/v1/snapshots/${enc(tag)}`,
          query: { cascade: opts.cascade ? 'true' : undefined, force: opts.force ? 'true' : undefined },
          ...pick(opts),
        })
      ).deleted,
    /** Polls until `ready` (resolves) or `failed` (throws), bounded by timeoutMs (default 10 min). */
    wait: async (tag: string, opts: WaitOptions = {}): Promise<SnapshotInfo> => {
      const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
      for (;;) {
        const s = await this.snapshots.get(tag, { signal: opts.signal });
        opts.onProgress?.(s);
        if (s.status === 'ready') return s;
        if (s.status === 'failed')
          throw new ForkdApiError('boot_failed', 0, `snapshot ${tag} failed to build: ${s.error ?? 'no reason given'}`);
        if (Date.now() > deadline)
          throw new ForkdApiError(
            'client_timeout',
            0,
            `snapshot ${tag} still ${s.status} after ${opts.timeoutMs ?? 600_000} ms`,
          );
        await sleep(opts.pollMs ?? 500, opts.signal);
      }
    },
  };

  readonly sandboxes = {
    /** Restores `n` children (201 once each is ready or failed). Default bound 10 min. */
    spawn: (body: CreateSandboxesBody, o: CallOptions = {}): Promise<CreateSandboxesResult> =>
      this.transport.json({ method: 'POST', path: '/v1/sandboxes', json: body, ...long(o) }),
    list: async (
      filter: { snapshotTag?: string; state?: SandboxState } = {},
      o: CallOptions = {},
    ): Promise<ApiSandbox[]> =>
      (
        await this.transport.json<{ sandboxes: ApiSandbox[] }>({
          method: 'GET',
          path: '/v1/sandboxes',
          query: { snapshot_tag: filter.snapshotTag, state: filter.state },
          ...o,
        })
      ).sandboxes,
    get: (id: string, o: CallOptions = {}): Promise<ApiSandbox> =>
      this.transport.json({ method: 'GET', path: `/v1/sandboxes/${enc(id)}`, ...o }),
    kill: async (id: string, o: CallOptions = {}): Promise<void> => {
      await this.transport.buffer({ method: 'DELETE', path: `/v1/sandboxes/${enc(id)}`, ...o });
    },
    /** POST /v1/sandboxes/{id}/ttl: it now expires `ttlSecs` from now. */
    setTtl: (id: string, ttlSecs: number, o: CallOptions = {}): Promise<ApiSandbox> =>
      this.transport.json({ method: 'POST', path: `/v1/sandboxes/${enc(id)}/ttl`, json: { ttl_secs: ttlSecs }, ...o }),
  };

  /** BRANCH: snapshot a running sandbox as a new tag. Default bound 10 min. */
  branch(id: string, body: BranchBody = {}, o: CallOptions = {}): Promise<BranchResult> {
    return this.transport.json({
      method: 'POST',
      path: `/v1/sandboxes/${enc(id)}/branch`,
      json: body,
      ...long(o),
    });
  }
}

/** Calls that restore or save VMs get 10 min unless the caller says otherwise. */
function long(o: CallOptions): CallOptions {
  return { signal: o.signal, timeoutMs: o.timeoutMs ?? 600_000 };
}

function pick(o: CallOptions): CallOptions {
  return { signal: o.signal, timeoutMs: o.timeoutMs };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ForkdApiError('aborted', 0, 'wait aborted'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new ForkdApiError('aborted', 0, 'wait aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
