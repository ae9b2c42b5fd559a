// Start-up reconciliation: compare SQLite with the host and make them agree before serving.
// - running rows whose QEMU still runs from run/<id>/: re-adopted (QMP + agent reconnected);
//   dead ones become `failed`; alive but unreachable ones are killed and become `failed`.
// - creating/stopping rows (the previous daemon stopped mid-operation): any QEMU is killed,
//   the run dir removed; a DELETE under way finishes, others become failed / stopped.
// - terminal rows with a QEMU still running from their run dir: orphans, killed.
// - run dirs whose recorded QEMU is dead (any owner): removed; parked VMMs (core/parked-vmms.ts)
//   of a daemon that is gone: killed, removed.
// - snapshot builds left `writing`: their parent QEMU and staging dirs removed, row `failed`
//   (or `ready` when the dir was published, complete, before the crash).
// - pack temp files and dirs (.recv-*, .unpack-*, ...) whose creating process is gone: removed.
// Only resources that name one of our ids or tags are touched: a local `forkd fork` running on
// the same data dir keeps its children.
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { messageOf } from '../../lib/errors.js';
import { isSandboxId } from '../../lib/ids.js';
import type { CoreContext } from '../context.js';
import { PENDING_RUN_DIR_PREFIX, readRunRecord, removeRunDir, runDirOwner } from '../run-dir.js';
import { releaseSandboxHost } from '../sandbox-release.js';
import type { StateStore } from '../state/store.js';
import type { ControllerHooks } from './events.js';
import { identityAlive, processAlive } from '../../host/proc-stat.js';
import { stopAdoptedQemu } from '../../vmm/adopted-qemu.js';
import { commandLines, processesUsing } from './proc.js';
import { mapWithConcurrency } from '../fork.js';
import { liveRunPid, reattachSandbox } from './reattach.js';
import { DELETING, type SandboxManager } from './sandboxes.js';
import { removeAbandonedTempPaths } from '../../host/owned-temp.js';
import { readSnapshotMeta } from '../snapshot-meta.js';

const REATTACH_CONCURRENCY = 8;

export interface ReconcileReport {
  adopted: string[];
  failed: string[];
  orphansKilled: string[];
  runDirsRemoved: string[];
  buildsAbandoned: string[];
  tempPathsRemoved: string[];
}

export async function reconcile(
  ctx: CoreContext,
  store: StateStore,
  manager: SandboxManager,
  hooks: ControllerHooks,
): Promise<ReconcileReport> {
  const report: ReconcileReport = {
    adopted: [],
    failed: [],
    orphansKilled: [],
    runDirsRemoved: [],
    buildsAbandoned: [],
    tempPathsRemoved: [],
  };
  const fail = (id: string, tag: string, reason: string): void => {
    store.updateSandbox(id, { state: 'failed', reason });
    report.failed.push(id);
    hooks.event({ event: 'sandbox.failed', sandboxId: id, snapshotTag: tag, reason });
  };
  const rows = store.listSandboxes();
  // Re-attach in parallel (each is a QMP and an agent round trip), bounded.
  const running = rows.filter((r) => r.state === 'running');
  await mapWithConcurrency(running.length, REATTACH_CONCURRENCY, async (i) => {
    const row = running[i]!;
    const pid = await liveRunPid(ctx, row.id);
    if (pid === undefined) {
      const { oom } = await releaseSandboxHost(ctx, row.id, { network: row.perChildNetns });
      return fail(row.id, row.snapshotTag, oom ? 'oom' : 'qemu exited while the daemon was not running');
    }
    try {
      const live = await reattachSandbox(ctx, row.id, { network: row.perChildNetns });
      manager.adoptRunning(live);
      store.updateSandbox(row.id, { pid });
      report.adopted.push(row.id);
      hooks.event({ event: 'sandbox.adopted', sandboxId: row.id, snapshotTag: row.snapshotTag });
    } catch (err) {
      await stopAdoptedQemu(pid, ctx.paths.runDir(row.id));
      await releaseSandboxHost(ctx, row.id, { network: row.perChildNetns });
      fail(row.id, row.snapshotTag, `could not re-attach after a daemon restart: ${messageOf(err).split('\n')[0]}`);
    }
  });
  // Every other row must have no process. Found by command line, not by sandbox.json: a
  // daemon killed mid-create may have started QEMU before it wrote the record. One /proc scan.
  const qemus = await commandLines(`${ctx.paths.runRoot}/`);
  for (const row of rows.filter((r) => r.state !== 'running')) {
    const dir = ctx.paths.runDir(row.id);
    for (const [pid, cmdline] of qemus) {
      if (!cmdline.includes(`${dir}/`)) continue;
      await stopAdoptedQemu(pid, dir);
      report.orphansKilled.push(row.id);
    }
    await releaseSandboxHost(ctx, row.id, { network: row.perChildNetns });
    if (row.state === 'stopped' || row.state === 'failed') continue;
    if (row.state === 'creating')
      fail(row.id, row.snapshotTag, 'the daemon stopped while the sandbox was being created');
    else if (row.reason === DELETING) store.deleteSandbox(row.id);
    else store.updateSandbox(row.id, { state: 'stopped' });
  }
  report.runDirsRemoved = await removeDeadRunDirs(ctx);
  report.buildsAbandoned = await abandonBuilds(ctx, store, hooks);
  report.tempPathsRemoved = await removeAbandonedTempPaths(ctx.paths.snapshotsDir);
  return report;
}

/** A run dir with no record, no owner file and no QEMU this old is a leftover. */
const RECORDLESS_GRACE_MS = 10_000;

/**
 * Run dirs with a record naming a process that is gone, and dirs without a record (a daemon
 * or CLI killed between creating a run dir and starting its QEMU) that no process uses and
 * whose creator is gone (or, for a dir naming no creator, older than a few seconds). Runs at
 * start-up and at a clean shutdown.
 */
export async function removeDeadRunDirs(ctx: CoreContext): Promise<string[]> {
  const removed: string[] = [];
  const entries = await readdir(ctx.paths.runRoot).catch(() => [] as string[]); // no run root yet: no run dirs to remove
  const names = entries.filter(isSandboxId);
  // Dirs still being assembled under a temporary name (see createRunDir): never a QEMU's.
  const pending = entries.flatMap((n) => {
    if (!n.startsWith(PENDING_RUN_DIR_PREFIX)) return [];
    // `.new-<id>.<pid>_<starttime>` (the creator), or `.new-<id>` from older versions.
    const [id, creator] = n.slice(PENDING_RUN_DIR_PREFIX.length).split('.', 2) as [string, string | undefined];
    if (!isSandboxId(id) || (creator !== undefined && !/^\d+_\d+$/.test(creator))) return [];
    return [{ name: n, creator: creator?.replace('_', ':') }];
  });
  const users = names.length > 0 ? [...(await commandLines(`${ctx.paths.runRoot}/`)).values()] : [];
  for (const name of names) {
    const dir = ctx.paths.runDir(name);
    const record = await readRunRecord(dir);
    if (!record) {
      if (users.some((c) => c.includes(`${dir}/`)) || !(await creatorGone(dir))) continue;
      await removeRunDir(ctx.paths, name);
      removed.push(name);
      continue;
    }
    if (typeof record.pid === 'number' && !(await processAlive(record.pid))) {
      await removeRunDir(ctx.paths, name);
      removed.push(name);
      continue;
    }
    // A parked VMM whose daemon is gone (killed): no sandbox will ever take it.
    if (record.parked === true && typeof record.pid === 'number' && (await runDirOwner(dir)) === 'gone') {
      await stopAdoptedQemu(record.pid, dir, { logger: ctx.logger });
      await removeRunDir(ctx.paths, name);
      removed.push(name);
    }
  }
  for (const { name, creator } of pending) {
    const dir = join(ctx.paths.runRoot, name);
    if (creator !== undefined ? await identityAlive(creator) : !(await creatorGone(dir))) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** A dir without a QEMU: its creator is gone, or it names none and is older than the grace. */
async function creatorGone(dir: string): Promise<boolean> {
  const owner = await runDirOwner(dir);
  if (owner !== 'unknown') return owner === 'gone';
  const age = Date.now() - ((await stat(dir).catch(() => undefined))?.mtimeMs ?? Date.now()); // the dir vanished meanwhile: age 0, left to the next pass
  return age >= RECORDLESS_GRACE_MS;
}

/** Builds the previous daemon left `writing`: kill their parent QEMU, drop staging dirs. */
async function abandonBuilds(ctx: CoreContext, store: StateStore, hooks: ControllerHooks): Promise<string[]> {
  const abandoned: string[] = [];
  for (const row of store.listSnapshotRows()) {
    if (row.status !== 'writing') continue;
    const stagingPrefix = join(ctx.paths.snapshotsDir, `.staging-${row.tag}-`);
    for (const pid of await processesUsing(stagingPrefix)) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''); // the process exited meanwhile: no run dir to name
      const runId = new RegExp(`${escapeRegExp(ctx.paths.runRoot)}/(sb-[a-z2-7]{16})/`).exec(cmdline)?.[1];
      await stopAdoptedQemu(pid, stagingPrefix);
      if (runId) await removeRunDir(ctx.paths, runId);
    }
    for (const name of await readdir(ctx.paths.snapshotsDir).catch(() => [] as string[])) {
      // no snapshots dir: no staging dirs
      if (name.startsWith(`.staging-${row.tag}-`))
        await rm(join(ctx.paths.snapshotsDir, name), { recursive: true, force: true });
    }
    // Published (renamed into place, snapshot.json written and synced first) before the row
    // turned `ready`: the snapshot is complete. Marking it failed, as before, left a `failed`
    // row and a `snapshot.failed` audit event for a snapshot that lists as ready and forks (a
    // daemon killed between the rename and the row update; test/integration/faults.test.ts
    // recreates that state by hand, the window is too short to hit with a kill).
    const published = await readSnapshotMeta(ctx.paths.snapshotDir(row.tag), row.tag).catch(() => undefined);
    if (published) {
      store.upsertSnapshot(row.tag, 'ready');
      hooks.event({ event: 'snapshot.created', snapshotTag: row.tag });
      continue;
    }
    const reason = 'the daemon stopped while the snapshot was being built';
    store.upsertSnapshot(row.tag, 'failed', reason);
    hooks.event({ event: 'snapshot.failed', snapshotTag: row.tag, reason });
    abandoned.push(row.tag);
  }
  return abandoned;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
