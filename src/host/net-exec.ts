// Running the network tools: iproute2 (`ip`, with `-batch -` to make one process do many
// steps), `nft -f -`, and `nsenter --net=...` for what must run inside a namespace. Always argv
// arrays and stdin, never a shell; errors carry the command and its stderr tail.
import { spawn } from 'node:child_process';
import { ForkdError } from '../lib/errors.js';
import { findSystemTool } from './netns-detect.js';

export interface NetTools {
  ip: string;
  nft: string;
  nsenter: string;
  sysctl: string;
}

const TIMEOUT_MS = 30_000;
const TOOL_PACKAGES: Record<keyof NetTools, string> = {
  ip: 'iproute2',
  nft: 'nftables',
  nsenter: 'util-linux',
  sysctl: 'procps',
};

let cached: Promise<NetTools> | undefined;

/** Absolute paths of the tools sandbox networking needs; names the package of a missing one. */
export function netTools(): Promise<NetTools> {
  cached ??= (async () => {
    const out = {} as NetTools;
    for (const name of Object.keys(TOOL_PACKAGES) as (keyof NetTools)[]) {
      const path = await findSystemTool(name);
      if (path === undefined) {
        cached = undefined;
        throw new ForkdError(
          'host_error',
          `sandbox networking needs ${name}, not found in /usr/sbin, /sbin, /usr/bin or /bin; install ${TOOL_PACKAGES[name]}`,
        );
      }
      out[name] = path;
    }
    return out;
  })();
  return cached;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run argv with optional stdin; resolves with the exit status (never rejects on a non-zero exit). */
export function execWithInput(cmd: string, args: readonly string[], input?: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
      timeout: TIMEOUT_MS,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout = (stdout + c).slice(-1_000_000)));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-16_384)));
    child.once('error', (err) =>
      reject(new ForkdError('host_error', `cannot run ${cmd}: ${err.message}`, { cause: err })),
    );
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Like execWithInput, but a non-zero exit is a host_error naming the command. */
export async function mustExec(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await execWithInput(cmd, args, input);
  if (r.code !== 0) {
    const tail = (r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n');
    throw new ForkdError('host_error', `${cmd} ${args.join(' ')} failed (exit ${r.code})${tail ? `: ${tail}` : ''}`);
  }
  return r.stdout;
}

export function netnsPath(ns: string): string {
  return `/run/netns/${ns}`;
}

/** argv prefix that runs a command inside namespace `ns` (still as root). */
export async function inNetns(ns: string): Promise<string[]> {
  const { nsenter } = await netTools();
  return [nsenter, `--net=${netnsPath(ns)}`, '--'];
}

/** Several `ip` commands in one process (`ip [-n NS] -batch -`), stopping at the first error. */
export async function ipBatch(ns: string | undefined, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  const { ip } = await netTools();
  await mustExec(ip, [...(ns ? ['-n', ns] : []), '-batch', '-'], `${lines.join('\n')}\n`);
}

/** Apply an nftables ruleset in namespace `ns` (or the host's when undefined). */
export async function nftApply(ns: string | undefined, ruleset: string): Promise<void> {
  const { nft } = await netTools();
  const prefix = ns ? await inNetns(ns) : [];
  const [cmd, ...args] = [...prefix, nft, '-f', '-'];
  await mustExec(cmd, args, ruleset);
}
