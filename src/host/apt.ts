// Debian packages forkd needs on the host, found with dpkg-query and installed with apt-get.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ForkdError, messageOf } from '../lib/errors.js';

const execFileAsync = promisify(execFile);

/** What each package is for is in the README's dependency table. */
export const REQUIRED_PACKAGES: readonly string[] = [
  'qemu-system-x86',
  'busybox-static',
  'nftables',
  'iproute2',
  'kmod',
  'cpio',
  'lz4',
  'zstd',
  'e2fsprogs',
  'mmdebstrap',
  'gcc',
  'libc6-dev',
  'dpkg-dev',
];

const QUERY_TIMEOUT_MS = 30_000;
const APT_TIMEOUT_MS = 30 * 60_000;
const APT_MAX_BUFFER = 64 * 1024 * 1024;

/**
 * Installed packages from `dpkg-query -W -f='${Package}\t${Status}\n'` output, e.g.
 * `gcc\tinstall ok installed`. Removed-but-configured packages say `deinstall ok config-files`.
 */
export function parseDpkgStatus(output: string): Set<string> {
  const installed = new Set<string>();
  for (const line of output.split('\n')) {
    const [name, status] = line.split('\t');
    if (name !== undefined && status?.trim() === 'install ok installed') installed.add(name.trim());
  }
  return installed;
}

/** The packages of `names` that are not installed (all of them when dpkg-query is absent). */
export async function missingPackages(names: readonly string[]): Promise<string[]> {
  if (names.length === 0) return [];
  let stdout = '';
  try {
    ({ stdout } = await execFileAsync('dpkg-query', ['-W', '-f=${Package}\t${Status}\n', ...names], {
      timeout: QUERY_TIMEOUT_MS,
    }));
  } catch (error) {
    // Exit 1 with "no packages found matching X" on stderr when some are unknown; the
    // known ones are still printed on stdout.
    const out = (error as { stdout?: unknown }).stdout;
    if (typeof out !== 'string') return [...names];
    stdout = out;
  }
  const installed = parseDpkgStatus(stdout);
  return names.filter((n) => !installed.has(n));
}

export function aptInstallArgs(names: readonly string[]): string[] {
  return ['install', '-y', '--no-install-recommends', ...names];
}

/** The command a user can paste, for error messages. */
export function aptInstallCommand(names: readonly string[]): string {
  return `sudo apt-get update && sudo apt-get ${aptInstallArgs(names).join(' ')}`;
}

let updated = false;

/**
 * `apt-get update` (once per process) then `apt-get install`. Needs root. DEBIAN_FRONTEND
 * goes through `env` in the argv because only src/lib/config.ts touches process.env.
 */
export async function installPackages(names: readonly string[], onProgress?: (msg: string) => void): Promise<void> {
  if (names.length === 0) return;
  if (!updated) {
    onProgress?.('apt-get update');
    await aptGet(['update']);
    updated = true;
  }
  onProgress?.(`apt-get install ${names.join(' ')}`);
  await aptGet(aptInstallArgs(names));
}

async function aptGet(args: string[]): Promise<void> {
  try {
    await execFileAsync('env', ['DEBIAN_FRONTEND=noninteractive', 'apt-get', ...args], {
      timeout: APT_TIMEOUT_MS,
      maxBuffer: APT_MAX_BUFFER,
    });
  } catch (error) {
    const stderr = (error as { stderr?: unknown }).stderr;
    const tail = typeof stderr === 'string' ? stderr.trim().split('\n').slice(-10).join('\n') : '';
    throw new ForkdError('host_error', `apt-get ${args.join(' ')} failed: ${tail || messageOf(error)}`, {
      cause: error,
    });
  }
}
