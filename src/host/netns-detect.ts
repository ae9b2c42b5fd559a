// Can this host give each sandbox its own network namespace and nftables rules?
// Probed for real: create and delete a throwaway namespace, since `ip` being installed says
// nothing about privileges (CAP_SYS_ADMIN) or a kernel built without CONFIG_NET_NS.
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { promisify } from 'node:util';
import { messageOf } from '../lib/errors.js';

const execFileAsync = promisify(execFile);
const PROBE_TIMEOUT_MS = 10_000;

// iproute2 and nftables install into sbin, which is often not on a non-root user's PATH.
const TOOL_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

export interface ToolStatus {
  present: boolean;
  path?: string;
  /** First line of `<tool> --version` / `ip -V`. */
  version?: string;
}

export interface NetnsInfo {
  ip: ToolStatus;
  /** A namespace could be created and deleted. */
  netns: { ok: boolean; error?: string };
  nft: ToolStatus;
}

/** Absolute path of a system tool in the usual bin/sbin directories, or undefined. */
export async function findSystemTool(name: string): Promise<string | undefined> {
  for (const dir of TOOL_DIRS) {
    const path = `${dir}/${name}`;
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Whether a system tool is installed, with its version line when it will say. */
export async function systemToolStatus(name: string, versionArgs: string[]): Promise<ToolStatus> {
  const path = await findSystemTool(name);
  if (path === undefined) return { present: false };
  try {
    const { stdout } = await execFileAsync(path, versionArgs, { timeout: PROBE_TIMEOUT_MS });
    return { present: true, path, version: stdout.split('\n')[0]?.trim() ?? '' };
  } catch {
    return { present: true, path }; // it is there; only its version is unknown
  }
}

/** Create and delete `forkd-probe-<pid>`; the delete runs even when the add half-failed. */
async function probeNetns(ip: string): Promise<{ ok: boolean; error?: string }> {
  const name = `forkd-probe-${process.pid}`;
  let result: { ok: boolean; error?: string };
  try {
    await execFileAsync(ip, ['netns', 'add', name], { timeout: PROBE_TIMEOUT_MS });
    result = { ok: true };
  } catch (error) {
    const stderr = (error as { stderr?: unknown }).stderr;
    const text = typeof stderr === 'string' && stderr.trim() !== '' ? stderr.trim() : messageOf(error);
    result = { ok: false, error: `ip netns add ${name} failed: ${text}` };
  }
  try {
    await execFileAsync(ip, ['netns', 'delete', name], { timeout: PROBE_TIMEOUT_MS });
  } catch (error) {
    // After a failed add there may be nothing to delete; after a good one, a failed delete leaks the probe.
    if (result.ok)
      return { ok: false, error: `ip netns delete ${name} failed (${messageOf(error)}); run: ip netns delete ${name}` };
  }
  return result;
}

export async function detectNetns(): Promise<NetnsInfo> {
  const [ip, nft] = await Promise.all([systemToolStatus('ip', ['-V']), systemToolStatus('nft', ['--version'])]);
  const netns =
    ip.path === undefined
      ? { ok: false, error: 'ip (iproute2) not found in /usr/sbin, /sbin, /usr/bin or /bin' }
      : await probeNetns(ip.path);
  return { ip, netns, nft };
}
