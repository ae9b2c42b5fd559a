// Handlers of the control routes: health, version, metrics, the document, snapshots and
// sandboxes. Each one: take validated input, call core, serialize (STYLE rule 2).
import type { BranchService } from '../core/branch.js';
import type { CoreContext } from '../core/context.js';
import type { SandboxManager } from '../core/controller/sandboxes.js';
import type { SnapshotService } from '../core/controller/snapshots.js';
import type { SandboxState } from '../core/state/store.js';
import type { Handler } from './http.js';
import type { Metrics } from './metrics.js';
import { DOWNTIME_MS_RANGE } from '../lib/contract.js';
import { OPENAPI_DOCUMENT } from './openapi.js';
import { guestHandlers } from './routes-guest.js';
import { processHandlers } from './routes-processes.js';
import { nodeHandlers, type NodeFacts } from './routes-node.js';
import type { HostCapabilities } from '../core/api-surface.js';
import { sandboxJson, snapshotJson } from './serialize.js';
import type {
  BranchBody,
  CreateSandboxesBody as WireCreateSandboxesBody,
  CreateSnapshotBody as WireCreateSnapshotBody,
  Defaulted,
} from '../lib/contract.js';

export interface ApiCore {
  ctx: CoreContext;
  sandboxes: SandboxManager;
  snapshots: SnapshotService;
  branches: BranchService;
  metrics: Metrics;
  version: { version: string; api: 'v1'; node: string; qemu: string; accel: 'kvm' | 'tcg' };
  /** The start-up probe (GET /v1/capabilities). */
  capabilities?: HostCapabilities | undefined;
  /** Identity and cap of this node (GET /v1/node). */
  node?: NodeFacts | undefined;
  activeSandboxes?: () => number;
}

// The bodies of lib/contract.ts as the handlers see them: validated, the schema's defaults in.
// (egress: its shape is checked by the schema; CIDRs and the need for per_child_netns by core.)
type CreateSnapshotBody = Defaulted<
  WireCreateSnapshotBody,
  'image' | 'mem_mib' | 'vcpus' | 'warmup' | 'boot_wait_secs'
>;
type CreateSandboxesBody = Defaulted<WireCreateSandboxesBody, 'n' | 'per_child_netns'>;

export function handlers(core: ApiCore): Record<string, Handler> {
  const { sandboxes, snapshots } = core;
  return {
    healthz: () => Promise.resolve({ status: 200, json: { ok: true } }),
    version: () => Promise.resolve({ status: 200, json: core.version }),
    metrics: async () => ({
      status: 200,
      text: await core.metrics.render(),
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
    }),
    openapi: () => Promise.resolve({ status: 200, json: OPENAPI_DOCUMENT }),

    listSnapshots: async () => ({ status: 200, json: { snapshots: (await snapshots.list()).map(snapshotJson) } }),
    getSnapshot: async ({ params }) => ({ status: 200, json: snapshotJson(await snapshots.get(params.tag!)) }),
    createSnapshot: async ({ body, requestId }) => {
      const b = body as CreateSnapshotBody;
      const view = await snapshots.startCreate({
        tag: b.tag,
        image: b.image,
        memMiB: b.mem_mib,
        vcpus: b.vcpus,
        warmup: b.warmup,
        bootWaitSecs: b.boot_wait_secs,
        requestId,
      });
      return { status: 202, json: snapshotJson(view), headers: { Location: `/v1/snapshots/${view.tag}` } };
    },
    deleteSnapshot: async ({ params, query, requestId }) => {
      const deleted = await snapshots.delete(params.tag!, {
        cascade: query.cascade === 'true',
        force: query.force === 'true',
        requestId,
      });
      return { status: 200, json: { deleted } };
    },

    listSandboxes: ({ query }) =>
      Promise.resolve({
        status: 200,
        json: {
          sandboxes: sandboxes
            .list({
              ...(query.snapshot_tag ? { snapshotTag: query.snapshot_tag } : {}),
              ...(query.state ? { state: query.state as SandboxState } : {}),
            })
            .map(sandboxJson),
        },
      }),
    getSandbox: ({ params }) => Promise.resolve({ status: 200, json: sandboxJson(sandboxes.get(params.id!)) }),
    createSandboxes: async ({ body, requestId }) => {
      const b = body as CreateSandboxesBody;
      const rows = await sandboxes.create({
        snapshotTag: b.snapshot_tag,
        n: b.n,
        ttlSecs: b.ttl_secs,
        memoryLimitMiB: b.memory_limit_mib,
        cpuLimit: b.cpu_limit,
        pidsLimit: b.pids_limit,
        perChildNetns: b.per_child_netns,
        egress: b.egress,
        metadata: b.metadata,
        requestId,
      });
      return { status: 201, json: { sandboxes: rows.map(sandboxJson), warnings: [] } };
    },
    setSandboxTtl: ({ params, body }) =>
      Promise.resolve({
        status: 200,
        json: sandboxJson(sandboxes.setTtl(params.id!, (body as { ttl_secs: number }).ttl_secs)),
      }),
    deleteSandbox: async ({ params, requestId }) => {
      await sandboxes.delete(params.id!, requestId);
      return { status: 204 };
    },
    branchSandbox: async ({ params, body, requestId }) => {
      const b = (body ?? {}) as BranchBody;
      const r = await core.branches.start({
        sandboxId: params.id!,
        tag: b.tag,
        downtimeMs: b.downtime_ms ?? DOWNTIME_MS_RANGE.default,
        requestId,
      });
      const base = { tag: r.tag, sandbox_id: r.sandboxId, pause_ms: r.pauseMs, live_ms: r.liveMs, bytes: r.bytes };
      const headers = { Location: `/v1/snapshots/${r.tag}` };
      if (b.wait === false) return { status: 202, json: { ...base, status: 'writing', total_ms: r.liveMs }, headers };
      const done = await r.done;
      const snapshot = snapshotJson(await snapshots.get(r.tag));
      const json = { ...base, status: 'ready', total_ms: done.totalMs, memory_bytes: done.memoryBytes, snapshot };
      return { status: 201, json, headers };
    },
    ...guestHandlers(sandboxes, core.ctx.logger),
    ...processHandlers(sandboxes, core.ctx.logger),
    ...nodeHandlers({
      ctx: core.ctx,
      sandboxes,
      snapshots,
      capabilities: core.capabilities,
      node: core.node,
      activeSandboxes: core.activeSandboxes ?? (() => 0),
    }),
  };
}
