// Per-sandbox run dir: run/<id>/{owner, qmp.sock, agent.sock, console.log, sandbox.json}. Mode
// 0700 and owned by the VM user, so QEMU can create its sockets there and nobody else (but
// root, the daemon) can reach them. `owner` names the process that made the dir (pid and start
// time): the dir is assembled as run/.new-<id> and renamed into place with that file in it, so
// no run/<id> ever lacks one. A dir whose QEMU never started (its creator was killed first) is
// recognisably abandoned as soon as that process is gone, with no guessing from its age.
import { chown, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSandboxId } from '../lib/ids.js';
import type { UserInfo } from '../host/users.js';
import { identityAlive, processUsesDir, selfIdentity } from '../host/proc-stat.js';
import { RUN_FILES, type DataPaths } from './paths.js';

export interface RunRecord {
  id: string;
  snapshotTag: string | null;
  role: 'parent' | 'child';
  pid: number;
  createdAt: string;
  /** A child QEMU the daemon started ahead of any spawn (core/parked-vmms.ts): no sandbox yet. */
  parked?: boolean;
}

/** A run dir being assembled: `run/.new-<id>.<pid>_<starttime>` (see removeDeadRunDirs for leftovers). */
export const PENDING_RUN_DIR_PREFIX = '.new-';

export async function createRunDir(paths: DataPaths, id: string, vmUser: UserInfo | undefined): Promise<string> {
  await mkdir(paths.runRoot, { recursive: true, mode: 0o711 });
  const dir = paths.runDir(id);
  // The name says who assembles it (`.new-<id>.<pid>_<starttime>`): a creator killed between
  // the mkdir and writing `owner` left a dir naming nobody, which the next daemon kept (too
  // young for the age rule) until its own restart (seen by the fault suite after a kill -9
  // during a BRANCH's materialize).
  const pending = join(paths.runRoot, `${PENDING_RUN_DIR_PREFIX}${id}.${(await selfIdentity()).replace(':', '_')}`);
  await mkdir(pending, { mode: 0o700 });
  try {
    await writeFile(join(pending, RUN_FILES.owner), `${await selfIdentity()}\n`, { mode: 0o600 });
    if (vmUser) await chown(pending, vmUser.uid, vmUser.gid);
    // Ids are random; a same-named dir with contents makes rename fail (ENOTEMPTY), an empty
    // one (nothing in it to lose) is replaced.
    await rename(pending, dir);
  } catch (err) {
    await rm(pending, { recursive: true, force: true });
    throw err;
  }
  return dir;
}

export async function writeRunRecord(dir: string, record: RunRecord): Promise<void> {
  await writeFile(join(dir, RUN_FILES.record), `${JSON.stringify(record)}\n`, { mode: 0o600 });
}

export async function removeRunDir(paths: DataPaths, id: string): Promise<void> {
  await rm(paths.runDir(id), { recursive: true, force: true });
}

/** The run dir's record, if it has a readable one (its QEMU started); fields unchecked. */
export async function readRunRecord(dir: string): Promise<Partial<RunRecord> | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, RUN_FILES.record), 'utf8')) as Partial<RunRecord>;
  } catch {
    // absent or torn (a crash mid-write): callers treat the dir as having no record
    return undefined;
  }
}

/** Whether the process that created the run dir lives; `unknown` when the dir names none. */
export async function runDirOwner(dir: string): Promise<'alive' | 'gone' | 'unknown'> {
  let identity: string;
  try {
    identity = await readFile(join(dir, RUN_FILES.owner), 'utf8');
  } catch {
    // no owner file (written right after the dir): whose it is cannot be told
    return 'unknown';
  }
  return (await identityAlive(identity)) ? 'alive' : 'gone';
}

/**
 * Run records whose QEMU process is still alive (the process's cmdline names the run dir).
 * A parked VMM (no sandbox yet, core/parked-vmms.ts) is not listed: it uses no snapshot in the
 * sense these callers ask (in use by, may it be removed); it holds its files open and is never
 * handed out for a snapshot that is gone or replaced.
 */
export async function liveRunRecords(paths: DataPaths): Promise<RunRecord[]> {
  let names: string[];
  try {
    names = await readdir(paths.runRoot);
  } catch {
    // no run root yet: nothing runs
    return [];
  }
  const live: RunRecord[] = [];
  for (const name of names) {
    if (!isSandboxId(name)) continue;
    const dir = paths.runDir(name);
    // No record yet, or unreadable: not counted as live.
    const record = await readRunRecord(dir);
    if (record?.parked === true) continue;
    if (typeof record?.pid === 'number' && (await processUsesDir(record.pid, dir))) live.push(record as RunRecord);
  }
  return live;
}
