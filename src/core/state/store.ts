// The daemon's state in SQLite (WAL) at <data-dir>/forkd.db: sandboxes and the snapshots it
// builds. Snapshot *files* stay the truth for what a snapshot is (snapshot.json); a row only
// adds what the files cannot say (a build in progress or failed). The database is opened in
// exclusive locking mode: a second daemon on the same data dir cannot open it (SQLITE_BUSY),
// which is exactly the one-daemon-per-data-dir rule.
import Database from 'better-sqlite3';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ForkdError, messageOf } from '../../lib/errors.js';
import type { EgressPolicy } from '../../host/nftables.js';
import { assertTransition } from './transitions.js';

export const SANDBOX_STATES = ['creating', 'running', 'stopping', 'stopped', 'failed'] as const;
export type SandboxState = (typeof SANDBOX_STATES)[number];
/** States in which a QEMU process may exist and the sandbox counts against the cap. */
export const ACTIVE_STATES: readonly SandboxState[] = ['creating', 'running', 'stopping'];

export const SNAPSHOT_STATUSES = ['writing', 'ready', 'failed'] as const;
export type SnapshotStatus = (typeof SNAPSHOT_STATUSES)[number];

export interface SandboxRow {
  id: string;
  snapshotTag: string;
  state: SandboxState;
  pid: number | null;
  accel: string;
  createdAt: string;
  updatedAt: string;
  expiresAt: string | null;
  memoryLimitMiB: number | null;
  /** CPU quota as a fraction of CPUs (cgroup cpu.max / CFS quota), as requested. */
  cpuLimit: number | null;
  pidsLimit: number | null;
  perChildNetns: boolean;
  /** The egress policy in force (the daemon's default when the spawn named none); null without a namespace. */
  egress: EgressPolicy | null;
  metadata: Record<string, string>;
  /** Why a sandbox is `failed` or `stopped` (e.g. "expired", "qemu exited: signal SIGKILL"). */
  reason: string | null;
}

export interface SandboxAccessRow {
  accessToken: string;
  env: Record<string, string>;
}

export interface SnapshotRow {
  tag: string;
  status: SnapshotStatus;
  createdAt: string;
  updatedAt: string;
  error: string | null;
}

interface RawSandbox {
  id: string;
  snapshot_tag: string;
  state: string;
  pid: number | null;
  accel: string;
  created_at: string;
  updated_at: string;
  expires_at: string | null;
  memory_limit_mib: number | null;
  cpu_limit: number | null;
  pids_limit: number | null;
  per_child_netns: number;
  /** JSON text of the EgressPolicy, or NULL. */
  egress: string | null;
  metadata: string;
  reason: string | null;
}

interface RawSnapshot {
  tag: string;
  status: string;
  created_at: string;
  updated_at: string;
  error: string | null;
}

// v1: the first schema. v2: cpu_limit, pids_limit, egress (added to a v1 file by migrate()).
const SCHEMA_VERSION = 2;
const SCHEMA = `
CREATE TABLE IF NOT EXISTS sandboxes (
  id TEXT PRIMARY KEY,
  snapshot_tag TEXT NOT NULL,
  state TEXT NOT NULL,
  pid INTEGER,
  accel TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  expires_at TEXT,
  memory_limit_mib INTEGER,
  per_child_netns INTEGER NOT NULL DEFAULT 0,
  metadata TEXT NOT NULL DEFAULT '{}',
  reason TEXT,
  cpu_limit REAL,
  pids_limit INTEGER,
  egress TEXT
);
CREATE INDEX IF NOT EXISTS sandboxes_by_tag ON sandboxes (snapshot_tag);
-- Per-sandbox credentials and environment of the E2B-compatible surface (src/api/e2b): the
-- access token its in-sandbox routes require, and the envVars added to every command. A table
-- of its own (not sandbox columns) so a forkd-only daemon never reads or writes it.
CREATE TABLE IF NOT EXISTS sandbox_access (
  id TEXT PRIMARY KEY,
  access_token TEXT NOT NULL,
  env TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS snapshots (
  tag TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  error TEXT
);
`;

export class StateStore {
  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {}

  /** Opens (creating) <dataDir>/forkd.db, mode 0600, and takes the exclusive lock. */
  static open(dataDir: string): StateStore {
    mkdirSync(dataDir, { recursive: true, mode: 0o755 });
    const path = join(dataDir, 'forkd.db');
    let db: Database.Database;
    let opened: Database.Database | undefined;
    try {
      db = opened = new Database(path, { timeout: 0 });
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec('BEGIN IMMEDIATE; COMMIT');
      // A file that has a database header but damaged pages opens fine; read it all once
      // before anything writes to it (the file is small: rows, no blobs).
      const check = db.pragma('quick_check', { simple: true }) as string;
      if (check !== 'ok') throw Object.assign(new Error(`quick_check: ${check}`), { code: 'SQLITE_CORRUPT' });
    } catch (err) {
      opened?.close();
      const code = (err as { code?: string }).code;
      throw new ForkdError(
        code === 'SQLITE_BUSY' ? 'conflict' : 'host_error',
        code === 'SQLITE_BUSY'
          ? `${path} is locked: another forkd-controller uses the data dir ${dataDir}; stop it or pick another --data-dir`
          : code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT'
            ? `the state database ${path} is damaged (${messageOf(err).split('\n')[0]}); it was left as it is: move it aside (forkd starts a new one, forgetting sandboxes and snapshot builds it recorded) or restore it from a backup`
            : `cannot open the state database ${path}: ${messageOf(err)}`,
        { cause: err },
      );
    }
    chmodSync(path, 0o600);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new ForkdError(
        'host_error',
        `${path} has schema version ${version}, newer than this forkd-controller understands (${SCHEMA_VERSION}); upgrade forkd`,
      );
    }
    try {
      db.transaction(() => {
        db.exec(SCHEMA);
        migrate(db);
        db.pragma(`user_version = ${SCHEMA_VERSION}`);
      })();
    } catch (err) {
      db.close();
      throw new ForkdError('host_error', `cannot migrate the state database ${path}: ${messageOf(err)}`, {
        cause: err,
      });
    }
    return new StateStore(db, path);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  // ---- sandboxes ----

  insertSandbox(row: SandboxRow): void {
    this.db
      .prepare(
        `INSERT INTO sandboxes (id, snapshot_tag, state, pid, accel, created_at, updated_at, expires_at,
           memory_limit_mib, cpu_limit, pids_limit, per_child_netns, egress, metadata, reason)
         VALUES (@id, @snapshot_tag, @state, @pid, @accel, @created_at, @updated_at, @expires_at,
           @memory_limit_mib, @cpu_limit, @pids_limit, @per_child_netns, @egress, @metadata, @reason)`,
      )
      .run(toRaw(row));
  }

  /** Many rows in one transaction (one fsync for a fork of N). */
  insertSandboxes(rows: readonly SandboxRow[]): void {
    this.db.transaction(() => {
      for (const row of rows) this.insertSandbox(row);
    })();
  }

  getSandbox(id: string): SandboxRow | undefined {
    const raw = this.db.prepare('SELECT * FROM sandboxes WHERE id = ?').get(id) as RawSandbox | undefined;
    return raw && fromRaw(raw);
  }

  listSandboxes(filter: { snapshotTag?: string; state?: SandboxState } = {}): SandboxRow[] {
    const where: string[] = [];
    const args: string[] = [];
    if (filter.snapshotTag !== undefined) {
      where.push('snapshot_tag = ?');
      args.push(filter.snapshotTag);
    }
    if (filter.state !== undefined) {
      where.push('state = ?');
      args.push(filter.state);
    }
    const sql = `SELECT * FROM sandboxes ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, id`;
    return (this.db.prepare(sql).all(...args) as RawSandbox[]).map(fromRaw);
  }

  countActive(): number {
    const row = this.db
      .prepare(`SELECT count(*) AS n FROM sandboxes WHERE state IN ('creating', 'running', 'stopping')`)
      .get() as { n: number };
    return row.n;
  }

  countByState(): Record<SandboxState, number> {
    const out = Object.fromEntries(SANDBOX_STATES.map((s) => [s, 0])) as Record<SandboxState, number>;
    for (const r of this.db.prepare('SELECT state, count(*) AS n FROM sandboxes GROUP BY state').all() as {
      state: SandboxState;
      n: number;
    }[])
      out[r.state] = r.n;
    return out;
  }

  updateSandbox(
    id: string,
    patch: { state?: SandboxState; pid?: number | null; reason?: string | null; expiresAt?: string | null },
  ): void {
    const current = this.getSandbox(id);
    if (!current) return;
    if (patch.state !== undefined) assertTransition(id, current.state, patch.state);
    this.db
      .prepare('UPDATE sandboxes SET state = ?, pid = ?, reason = ?, expires_at = ?, updated_at = ? WHERE id = ?')
      .run(
        patch.state ?? current.state,
        patch.pid === undefined ? current.pid : patch.pid,
        patch.reason === undefined ? current.reason : patch.reason,
        patch.expiresAt === undefined ? current.expiresAt : patch.expiresAt,
        new Date().toISOString(),
        id,
      );
  }

  deleteSandbox(id: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM sandboxes WHERE id = ?').run(id);
      this.db.prepare('DELETE FROM sandbox_access WHERE id = ?').run(id);
    })();
  }

  // ---- access tokens and environment of the E2B surface ----

  /** Inserts or replaces the sandbox's access record. */
  putSandboxAccess(id: string, access: SandboxAccessRow): void {
    this.db
      .prepare(
        `INSERT INTO sandbox_access (id, access_token, env) VALUES (?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET access_token = excluded.access_token, env = excluded.env`,
      )
      .run(id, access.accessToken, JSON.stringify(access.env));
  }

  getSandboxAccess(id: string): SandboxAccessRow | undefined {
    const raw = this.db.prepare('SELECT access_token, env FROM sandbox_access WHERE id = ?').get(id) as
      { access_token: string; env: string } | undefined;
    if (!raw) return undefined;
    return { accessToken: raw.access_token, env: parseStringMap(raw.env) };
  }

  // ---- snapshots (only what the files cannot say) ----

  upsertSnapshot(tag: string, status: SnapshotStatus, error: string | null = null): void {
    const now = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO snapshots (tag, status, created_at, updated_at, error) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (tag) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, error = excluded.error`,
      )
      .run(tag, status, now, now, error);
  }

  getSnapshot(tag: string): SnapshotRow | undefined {
    const raw = this.db.prepare('SELECT * FROM snapshots WHERE tag = ?').get(tag) as RawSnapshot | undefined;
    return raw && snapFromRaw(raw);
  }

  listSnapshotRows(): SnapshotRow[] {
    return (this.db.prepare('SELECT * FROM snapshots ORDER BY tag').all() as RawSnapshot[]).map(snapFromRaw);
  }

  deleteSnapshot(tag: string): void {
    this.db.prepare('DELETE FROM snapshots WHERE tag = ?').run(tag);
  }
}

/** Columns added after v1, with their types: added to an older file in place (data kept). */
const ADDED_COLUMNS: readonly [name: string, type: string][] = [
  ['cpu_limit', 'REAL'],
  ['pids_limit', 'INTEGER'],
  ['egress', 'TEXT'],
];

/**
 * Bring a v1 file (or any file missing a later column) up to the current schema. Runs inside
 * the open transaction; `CREATE TABLE IF NOT EXISTS` has already made a fresh file complete.
 */
function migrate(db: Database.Database): void {
  const have = new Set((db.pragma('table_info(sandboxes)') as { name: string }[]).map((c) => c.name));
  for (const [name, type] of ADDED_COLUMNS) {
    if (!have.has(name)) db.exec(`ALTER TABLE sandboxes ADD COLUMN ${name} ${type}`);
  }
  // A v1 daemon gave every namespace the then only policy, deny: say so rather than "unknown".
  if (!have.has('egress')) db.exec(`UPDATE sandboxes SET egress = '"deny"' WHERE per_child_netns = 1`);
}

function parseEgress(text: string | null): EgressPolicy | null {
  if (text === null) return null;
  try {
    const v = JSON.parse(text) as unknown;
    if (v === 'allow' || v === 'deny') return v;
    if (typeof v === 'object' && v !== null && Array.isArray((v as { allow?: unknown }).allow)) {
      return { allow: (v as { allow: unknown[] }).allow.filter((c): c is string => typeof c === 'string') };
    }
  } catch {
    /* a damaged cell must not hide the sandbox */
  }
  return null;
}

function toRaw(row: SandboxRow): RawSandbox {
  return {
    id: row.id,
    snapshot_tag: row.snapshotTag,
    state: row.state,
    pid: row.pid,
    accel: row.accel,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
    expires_at: row.expiresAt,
    memory_limit_mib: row.memoryLimitMiB,
    cpu_limit: row.cpuLimit,
    pids_limit: row.pidsLimit,
    per_child_netns: row.perChildNetns ? 1 : 0,
    egress: row.egress === null ? null : JSON.stringify(row.egress),
    metadata: JSON.stringify(row.metadata),
    reason: row.reason,
  };
}

function fromRaw(raw: RawSandbox): SandboxRow {
  let metadata: Record<string, string> = {};
  try {
    metadata = JSON.parse(raw.metadata) as Record<string, string>;
  } catch {
    /* a damaged cell must not hide the sandbox */
  }
  return {
    id: raw.id,
    snapshotTag: raw.snapshot_tag,
    state: (SANDBOX_STATES as readonly string[]).includes(raw.state) ? (raw.state as SandboxState) : 'failed',
    pid: raw.pid,
    accel: raw.accel,
    createdAt: raw.created_at,
    updatedAt: raw.updated_at,
    expiresAt: raw.expires_at,
    memoryLimitMiB: raw.memory_limit_mib,
    cpuLimit: raw.cpu_limit,
    pidsLimit: raw.pids_limit,
    perChildNetns: raw.per_child_netns === 1,
    egress: parseEgress(raw.egress),
    metadata,
    reason: raw.reason,
  };
}

function snapFromRaw(raw: RawSnapshot): SnapshotRow {
  return {
    tag: raw.tag,
    status: (SNAPSHOT_STATUSES as readonly string[]).includes(raw.status) ? (raw.status as SnapshotStatus) : 'failed',
    createdAt: raw.created_at,
    updatedAt: raw.updated_at,
    error: raw.error,
  };
}

/** A JSON object of strings (a damaged cell reads as empty, like metadata). */
function parseStringMap(text: string): Record<string, string> {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
    return Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {}; // a damaged cell must not hide the sandbox
  }
}
