// /proc/<pid>/stat, read the one safe way: the command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'. A pid alone does not name a process
// for long (pids are reused); pid + start time (field 22, clock ticks since boot) does.
import { readFile } from 'node:fs/promises';

export interface ProcStat {
  /** One letter: R, S, D, Z (zombie), X (dead), ... */
  state: string;
  /** Field 22: when the process started, in clock ticks after boot. */
  startTime: string;
}

export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // no such process (any more)
  }
  // After ") ": state is field 3, so start time (field 22) is the 20th of the rest.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = rest[0];
  const startTime = rest[19];
  if (!state || !startTime) return undefined;
  return { state, startTime };
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on every Linux ABI we run on). */
const USER_HZ = 100;

/** CPU time (user + system, fields 14 and 15) a process has used so far, in ms; 10 ms resolution. */
export async function processCpuMs(pid: number): Promise<number | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined); // no such process (any more)
  if (text === undefined) return undefined; // no such process (any more)
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(rest[11]) + Number(rest[12]);
  return Number.isFinite(ticks) ? (ticks * 1000) / USER_HZ : undefined;
}

/** Alive and not a zombie. */
export async function processAlive(pid: number): Promise<boolean> {
  const stat = await readProcStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/** "pid:starttime" of this process: names it even after its pid is reused. */
export async function selfIdentity(): Promise<string> {
  const stat = await readProcStat(process.pid);
  return `${process.pid}:${stat?.startTime ?? '?'}`;
}

/** Whether the process an identity from `selfIdentity` names is still alive. */
export async function identityAlive(identity: string): Promise<boolean> {
  const m = /^(\d+):(\d+)$/.exec(identity.trim());
  if (!m) return false;
  const stat = await readProcStat(Number(m[1]));
  return stat !== undefined && stat.startTime === m[2] && stat.state !== 'Z' && stat.state !== 'X';
}

/** The process is alive and its command line names `dir` (our run dir or staging dir). */
export async function processUsesDir(pid: number, dir: string): Promise<boolean> {
  if (!(await processAlive(pid))) return false;
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes(dir);
  } catch {
    return false; // exited between the two reads
  }
}
