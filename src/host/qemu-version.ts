// What the installed QEMU is and can do, asked of the binary itself.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { errnoOf, ForkdError, messageOf } from '../lib/errors.js';

const execFileAsync = promisify(execFile);
const TIMEOUT_MS = 10_000;

export const QEMU_BINARY = 'qemu-system-x86_64';

export interface QemuVersion {
  major: number;
  minor: number;
  patch: number;
  /** The whole first line, e.g. "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)". */
  raw: string;
}

/** Parse `qemu-system-x86_64 --version` output; undefined when it is not QEMU's banner. */
export function parseQemuVersion(output: string): QemuVersion | undefined {
  const line = output.split('\n').find((l) => l.includes('QEMU emulator version'));
  const match = line?.match(/QEMU emulator version (\d+)\.(\d+)(?:\.(\d+))?/);
  if (line === undefined || !match) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3] ?? 0), raw: line.trim() };
}

/** stdout of `<binary> ...args`; a missing binary is a host_error that says to run setup. */
async function ask(binary: string, args: string[]): Promise<string> {
  try {
    return (await execFileAsync(binary, args, { timeout: TIMEOUT_MS, maxBuffer: 8 * 1024 * 1024 })).stdout;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') {
      throw new ForkdError(
        'host_error',
        `${binary} not found on PATH; install it with "forkd setup" (Debian package qemu-system-x86)`,
        {
          cause: error,
        },
      );
    }
    throw new ForkdError('host_error', `${binary} ${args.join(' ')} failed: ${messageOf(error)}`, { cause: error });
  }
}

export async function qemuVersion(binary = QEMU_BINARY): Promise<QemuVersion> {
  const out = await ask(binary, ['--version']);
  const version = parseQemuVersion(out);
  if (version === undefined) {
    throw new ForkdError('host_error', `cannot read a version from "${binary} --version": ${out.split('\n')[0] ?? ''}`);
  }
  return version;
}

/** Machine types from `-machine help` ("microvm              microvm (i386)"). */
export async function qemuMachines(binary = QEMU_BINARY): Promise<string[]> {
  const out = await ask(binary, ['-machine', 'help']);
  return out
    .split('\n')
    .slice(1) // "Supported machines are:"
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((m) => m !== '');
}

/** True when `-help` documents `-sandbox` (QEMU built with seccomp). */
export async function qemuHasSandbox(binary = QEMU_BINARY): Promise<boolean> {
  return /^-sandbox /m.test(await ask(binary, ['-help']));
}
