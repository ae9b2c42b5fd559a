// The unprivileged user QEMU runs as. QEMU is started already as this user (not with
// -runas: the seccomp sandbox's elevateprivileges=deny kills QEMU on its setuid call).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ForkdError, messageOf } from '../lib/errors.js';
import { findSystemTool } from './netns-detect.js';

const execFileAsync = promisify(execFile);
const TIMEOUT_MS = 30_000;

export interface UserInfo {
  name: string;
  uid: number;
  gid: number;
}

// useradd's default NAME_REGEX, minus the trailing `$` machine accounts; also keeps names
// that start with "-" from being read as options.
const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

export function useraddArgs(name: string): string[] {
  return ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name];
}

/** Find `name` in /etc/passwd text (`name:x:uid:gid:gecos:home:shell`). */
export function parsePasswd(text: string, name: string): UserInfo | undefined {
  for (const line of text.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined && /^\d+$/.test(uid) && /^\d+$/.test(gid)) {
      return { name, uid: Number(uid), gid: Number(gid) };
    }
  }
  return undefined;
}

/** uid/gid of a user: /etc/passwd first, then `id` (which also sees NSS users, e.g. LDAP). */
export async function lookupUser(name: string): Promise<UserInfo | undefined> {
  // An unreadable /etc/passwd is not an answer: `id` below is asked instead.
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '');
  const local = parsePasswd(passwd, name);
  if (local !== undefined) return local;
  if (!USER_NAME.test(name)) return undefined;
  try {
    const [uid, gid] = await Promise.all(
      ['-u', '-g'].map(async (flag) =>
        (await execFileAsync('id', [flag, name], { timeout: TIMEOUT_MS })).stdout.trim(),
      ),
    );
    return { name, uid: Number(uid), gid: Number(gid) };
  } catch {
    return undefined; // `id` exits 1 with "no such user"
  }
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Create the VM user when missing. Idempotent; needs root only when it has to create. */
export async function ensureUser(name: string): Promise<UserInfo & { created: boolean }> {
  if (!USER_NAME.test(name)) {
    throw new ForkdError(
      'invalid_argument',
      `VM user name "${name}" is not a valid user name (${USER_NAME.source}); set FORKD_VM_USER to one`,
    );
  }
  const existing = await lookupUser(name);
  if (existing !== undefined) return { ...existing, created: false };
  const command = `useradd ${useraddArgs(name).join(' ')}`;
  if (!isRoot()) {
    throw new ForkdError(
      'host_error',
      `VM user "${name}" does not exist and creating it needs root: run "sudo ${command}" or "sudo forkd setup"`,
    );
  }
  const useradd = await findSystemTool('useradd');
  if (useradd === undefined) {
    throw new ForkdError(
      'host_error',
      `VM user "${name}" does not exist and useradd was not found; install the passwd package`,
    );
  }
  try {
    await execFileAsync(useradd, useraddArgs(name), { timeout: TIMEOUT_MS });
  } catch (error) {
    const stderr = (error as { stderr?: unknown }).stderr;
    const detail = typeof stderr === 'string' && stderr.trim() !== '' ? stderr.trim() : messageOf(error);
    throw new ForkdError('host_error', `creating VM user "${name}" failed (${command}): ${detail}`, { cause: error });
  }
  const created = await lookupUser(name);
  if (created === undefined) {
    throw new ForkdError('host_error', `useradd reported success but user "${name}" is still not found`);
  }
  return { ...created, created: true };
}
