// Can the VM user reach the data dir? QEMU runs as that user (src/host/users.ts) and opens
// files under <data-dir> (snapshot memory, disks, its own QMP socket in the run dir): every
// directory on the way there needs search (x) permission for it. A data dir inside a 0700
// directory (what `mktemp -d` makes) otherwise fails deep inside QEMU with "Failed to unlink
// socket ... Permission denied". This reads mode bits and owner/group of each ancestor with
// stat(2) against the user's uid and gids; it does not switch users. POSIX ACLs and LSM
// policies are not read (see docs/RELIABILITY.md, known limits).
import { execFile } from 'node:child_process';
import { readFile, realpath, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ForkdError, errnoOf } from '../lib/errors.js';
import type { UserInfo } from './users.js';

const execFileAsync = promisify(execFile);

export interface Identity {
  name: string;
  uid: number;
  /** Primary and supplementary groups. */
  gids: readonly number[];
}

export interface DirOwner {
  mode: number;
  uid: number;
  gid: number;
}

export interface Unreachable {
  /** The directory the user cannot search. */
  dir: string;
  mode: number;
  uid: number;
  gid: number;
  /** The permission bit that would let the user through (`u`, `g` or `o`). */
  who: 'u' | 'g' | 'o';
}

/** Search permission by the owner/group/other class that applies (the owner class wins even when it denies). */
export function canSearch(st: DirOwner, id: Identity): boolean {
  if (id.uid === 0) return true;
  if (st.uid === id.uid) return (st.mode & 0o100) !== 0;
  if (id.gids.includes(st.gid)) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

function classOf(st: DirOwner, id: Identity): 'u' | 'g' | 'o' {
  if (st.uid === id.uid) return 'u';
  return id.gids.includes(st.gid) ? 'g' : 'o';
}

/** `/a/b/c` -> [`/`, `/a`, `/a/b`, `/a/b/c`]. */
export function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let p = resolve(path); ; p = dirname(p)) {
    out.unshift(p);
    if (dirname(p) === p) return out;
  }
}

/**
 * The first directory on the way to `dataDir` (itself included, when it exists) that `id`
 * cannot search; undefined when every existing one is searchable. Components that do not
 * exist yet are skipped (forkd creates them 0755). A symlinked component is checked on both
 * the path as written and its resolved target.
 */
export async function findUnreachable(dataDir: string, id: Identity): Promise<Unreachable | undefined> {
  const literal = ancestors(dataDir);
  let deepest: string | undefined;
  const dirs: string[] = [];
  for (const dir of literal) {
    const st = await stat(dir).catch((err: unknown) => {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
      throw err;
    });
    if (!st) break;
    dirs.push(dir);
    deepest = dir;
  }
  if (deepest !== undefined) {
    const real = await realpath(deepest);
    for (const dir of ancestors(real)) if (!dirs.includes(dir)) dirs.push(dir);
  }
  for (const dir of dirs) {
    const st = await stat(dir);
    if (!st.isDirectory()) continue; // a file where the data dir should be fails later with its own error
    const owner = { mode: st.mode, uid: st.uid, gid: st.gid };
    if (!canSearch(owner, id)) return { dir, ...owner, who: classOf(owner, id) };
  }
  return undefined;
}

/** Group ids of a user: `id -G` (sees NSS groups too), else its primary gid plus /etc/group membership. */
export async function groupsOf(user: UserInfo): Promise<number[]> {
  try {
    const { stdout } = await execFileAsync('id', ['-G', '--', user.name], { timeout: 10_000 });
    const gids = stdout.trim().split(/\s+/).map(Number);
    if (gids.length > 0 && gids.every((g) => Number.isInteger(g) && g >= 0)) return gids;
  } catch {
    /* fall back to /etc/group */
  }
  const text = await readFile('/etc/group', 'utf8').catch(() => ''); // unreadable: the primary group only
  return [user.gid, ...parseGroupMembership(text, user.name)];
}

/** gids of the groups that list `name` as a member in /etc/group text (`name:x:gid:a,b`). */
export function parseGroupMembership(text: string, name: string): number[] {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const [, , gid, members] = line.split(':');
    if (gid === undefined || !/^\d+$/.test(gid) || members === undefined) continue;
    if (members.trim().split(',').includes(name)) out.push(Number(gid));
  }
  return out;
}

/** The one line that says what is wrong and how to fix it. */
export function unreachableMessage(dataDir: string, id: Identity, u: Unreachable): string {
  const mode = (u.mode & 0o7777).toString(8).padStart(4, '0');
  return (
    `the VM user ${id.name} (uid ${id.uid}) cannot reach the data dir ${resolve(dataDir)}: ` +
    `${u.dir} is mode ${mode} (owner uid ${u.uid}, gid ${u.gid}) without search permission for it, ` +
    `so QEMU could not open its files there; run: chmod ${u.who}+x ${u.dir} ` +
    `(or move the data dir under a directory it can traverse, e.g. --data-dir /var/lib/forkd)`
  );
}

/** Throws a one-line host_error when the VM user cannot reach `dataDir`. */
export async function assertVmUserReaches(dataDir: string, user: UserInfo): Promise<void> {
  const id: Identity = { name: user.name, uid: user.uid, gids: await groupsOf(user) };
  const u = await findUnreachable(dataDir, id);
  if (u) throw new ForkdError('host_error', unreachableMessage(dataDir, id, u), { details: { dir: u.dir } });
}
