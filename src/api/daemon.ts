// The daemon's assembly: config -> posture checks -> audit log -> core context -> SQLite ->
// core services -> reconciliation -> HTTP pipeline -> listener; and the reverse on shutdown.
// The bin file only parses argv and calls `startDaemon`.
import type { Server } from 'node:http';
import type { ControllerConfig } from '../lib/config.js';
import { messageOf } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import { FORKD_VERSION } from '../lib/version.js';
import { createCoreContext } from '../core/context.js';
import { qemuVersionString } from '../core/host-facts.js';
import type { ControllerHooks } from '../core/controller/events.js';
import { BranchService } from '../core/branch.js';
import { reconcile, removeDeadRunDirs } from '../core/controller/reconcile.js';
import { SandboxManager } from '../core/controller/sandboxes.js';
import { SnapshotService } from '../core/controller/snapshots.js';
import { StateStore } from '../core/state/store.js';
import { AuditLog } from './audit.js';
import { BearerAuth } from './auth.js';
import { createPipeline } from './http.js';
import { Metrics } from './metrics.js';
import { checkPosture } from './posture.js';
import { FEATURES, probeHostCapabilities } from '../core/api-surface.js';
import { newSandboxId, nodeKeyOf } from '../lib/ids.js';
import { ParkedVmms } from '../core/parked-vmms.js';
import { handlers, type ApiCore } from './routes.js';
import { listen } from './server.js';
import { compileOperations } from './validation.js';
import { SandboxAccess } from '../core/controller/access.js';
import { checkE2bBind } from './e2b/posture.js';
import { createE2bHandler } from './e2b/server.js';

/** How long shutdown waits for requests (and snapshot builds) in flight. */
const DRAIN_MS = 30_000;

export interface Daemon {
  address: string;
  url: string;
  /** The E2B-compatible API's URL (--e2b-bind), if served. */
  e2bUrl: string | undefined;
  logger: Logger;
  /** SIGTERM/SIGINT: stop serving, drain, leave (or kill) sandboxes, close state. */
  shutdown(): Promise<void>;
  /** SIGHUP. */
  reopenAuditLog(): void;
}

/** Throws StartupRefusal (policy) or ForkdError (environment) before anything is served. */
export async function startDaemon(cfg: ControllerConfig): Promise<Daemon> {
  const posture = checkPosture(cfg);
  const e2bBind = checkE2bBind(cfg.e2bBind, posture, cfg.insecureNoTls);
  const logger = createLogger({ level: cfg.local.logLevel, base: { component: 'forkd-controller' } });
  for (const w of posture.warnings) {
    process.stderr.write(`\n*** WARNING: ${w} ***\n\n`);
    logger.warn(w);
  }
  const audit = AuditLog.open(cfg.auditLog, logger, { version: FORKD_VERSION, data_dir: cfg.local.dataDir });
  const ctx = await createCoreContext(cfg.local, logger);
  const store = StateStore.open(cfg.local.dataDir);
  const qemu = qemuVersionString(ctx.facts.qemu);
  // What this host and the daemon's own privileges allow; a spawn asking for more is refused.
  const capabilities = await probeHostCapabilities();
  for (const f of FEATURES) {
    const st = capabilities.features[f];
    if (!st.available) logger.warn(`isolation feature ${f} is unavailable: ${st.reason ?? ''}`);
  }
  const nodeKey = nodeKeyOf(cfg.nodeName);
  const metrics = new Metrics({
    snapshots: async () => {
      const counts: Record<string, number> = { ready: 0, writing: 0, failed: 0 };
      for (const v of await snapshots.list()) counts[v.status] = (counts[v.status] ?? 0) + 1;
      return counts;
    },
    sandboxes: () => store.countByState(),
    activeSandboxes: () => store.countActive(),
    branchesInFlight: () => branches.inFlight,
    branchConcurrencyCap: () => cfg.branchConcurrency,
    buildInfo: () => ({ version: FORKD_VERSION, node: process.version, qemu, accel: ctx.facts.accel.accel }),
    parked: () => parked.stats(),
  });
  const hooks: ControllerHooks = {
    event: (e) => {
      // A deleted snapshot's parked VMMs would never be handed out again (take checks identity).
      if (e.event === 'snapshot.deleted' && e.snapshotTag) void parked.drain(e.snapshotTag);
      audit.event({
        event: e.event,
        ...(e.sandboxId ? { sandbox_id: e.sandboxId } : {}),
        ...(e.snapshotTag ? { snapshot_tag: e.snapshotTag } : {}),
        ...(e.reason ? { reason: e.reason } : {}),
        ...(e.requestId ? { request_id: e.requestId } : {}),
      });
      logger.info(e.event, { sandbox: e.sandboxId, snapshot: e.snapshotTag, reason: e.reason });
    },
    spawned: (t) => {
      metrics.spawnLatency.observe(t.spawnMs / 1000);
      metrics.restoreLatency.observe(t.restoreMs / 1000);
    },
  };
  const parked = new ParkedVmms(ctx, { perSnapshot: cfg.parkedVmms, newId: () => newSandboxId(nodeKey) });
  const sandboxes = new SandboxManager(ctx, store, hooks, {
    maxSandboxes: cfg.maxSandboxes,
    defaultEgress: cfg.defaultEgress,
    capabilities,
    nodeKey,
    parked,
  });
  const activeUsers = (tag: string): string[] =>
    store
      .listSandboxes({ snapshotTag: tag })
      .flatMap((r) => (r.state === 'failed' || r.state === 'stopped' ? [] : [r.id]));
  const snapshots = new SnapshotService(ctx, store, hooks, activeUsers);
  const branches = new BranchService(ctx, store, sandboxes, hooks, { concurrency: cfg.branchConcurrency });

  const report = await reconcile(ctx, store, sandboxes, hooks);
  logger.info('reconciled state with the host', { ...report });

  const core: ApiCore = {
    ctx,
    sandboxes,
    snapshots,
    branches,
    metrics,
    version: { version: FORKD_VERSION, api: 'v1', node: process.version, qemu, accel: ctx.facts.accel.accel },
    capabilities,
    node: {
      name: cfg.nodeName,
      key: nodeKey,
      maxSandboxes: cfg.maxSandboxes,
      version: FORKD_VERSION,
      qemu,
      accel: ctx.facts.accel.accel,
    },
    activeSandboxes: () => store.countActive(),
  };
  const pipeline = createPipeline({
    operations: compileOperations(),
    handlers: handlers(core),
    auth: new BearerAuth(posture.token),
    audit,
    metrics,
    logger,
  });
  const listening = await listen(posture.bind, posture.tls, pipeline, {
    headersTimeoutMs: cfg.httpHeadersTimeoutMs,
    requestTimeoutMs: cfg.httpRequestTimeoutMs,
  });
  const e2b = e2bBind
    ? await listen(
        e2bBind,
        posture.tls,
        createE2bHandler({
          core: { sandboxes, snapshots, branches, access: new SandboxAccess(store) },
          token: posture.token,
          audit,
          metrics,
          logger,
        }),
        { headersTimeoutMs: cfg.httpHeadersTimeoutMs, requestTimeoutMs: cfg.httpRequestTimeoutMs },
      ).catch((err: unknown) => {
        void drain(listening.server, 0);
        throw err;
      })
    : undefined;
  for (const note of posture.notes) logger.info(note);
  if (ctx.facts.accel.warning) logger.warn(`accelerator ${ctx.facts.accel.accel}: ${ctx.facts.accel.warning}`);
  // Always printed, whatever the log level: with --bind ...:0 it is how a caller learns the port.
  createLogger({ level: 'info', base: { component: 'forkd-controller' } }).info('listening', {
    address: listening.address,
    url: listening.url,
    e2b_url: e2b?.url ?? null,
    tls: posture.tls !== undefined,
    auth: posture.token !== undefined,
    data_dir: cfg.local.dataDir,
    audit_log: cfg.auditLog,
    branch_concurrency: cfg.branchConcurrency,
    max_sandboxes: cfg.maxSandboxes,
    default_egress: cfg.defaultEgress,
    node_name: cfg.nodeName,
    node_key: nodeKey,
    features: Object.fromEntries(FEATURES.map((f) => [f, capabilities.features[f].available])),
    version: FORKD_VERSION,
  });

  let stopping: Promise<void> | undefined;
  return {
    address: listening.address,
    url: listening.url,
    e2bUrl: e2b?.url,
    logger,
    reopenAuditLog: () => {
      try {
        audit.reopen();
        logger.info('audit log reopened', { path: cfg.auditLog });
      } catch (err) {
        logger.error('cannot reopen the audit log; still writing to the old file', { error: messageOf(err) });
      }
    },
    shutdown: () =>
      (stopping ??= (async () => {
        logger.info('shutting down', { kill_sandboxes: cfg.killOnExit });
        const deadline = Date.now() + DRAIN_MS;
        await Promise.all([drain(listening.server, DRAIN_MS), e2b && drain(e2b.server, DRAIN_MS)]);
        await Promise.race([
          Promise.all([snapshots.idle(), branches.idle()]),
          sleep(Math.max(0, deadline - Date.now())),
        ]);
        // Parked VMMs are no sandboxes: never left for the next daemon.
        await parked.close();
        await sandboxes.close({ kill: cfg.killOnExit });
        // Leftovers a crashed predecessor left half made are old enough to go by now.
        await removeDeadRunDirs(ctx).catch((err: unknown) =>
          logger.warn('run dir cleanup failed', { error: messageOf(err) }),
        );
        store.close();
        logger.info('stopped', { sandboxes: cfg.killOnExit ? 'killed' : 'left running for the next daemon to adopt' });
        audit.close();
      })()),
  };
}

/** Stop accepting, let requests in flight finish (bounded), then cut what is left. */
async function drain(server: Server, ms: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), ms);
  timer.unref();
  await closed;
  clearTimeout(timer);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
