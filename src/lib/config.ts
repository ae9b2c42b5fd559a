// The only file that reads process.env (STYLE rule 7). Everything else receives a frozen,
// typed config object. Units are in the names.
import { isAbsolute, resolve } from 'node:path';
import type { LogLevel } from './log.js';

export interface LocalConfig {
  /** Root of all state: images/, snapshots/, run/, cache/. */
  readonly dataDir: string;
  readonly logLevel: LogLevel;
  /** Name of the unprivileged user QEMU runs as. */
  readonly vmUser: string;
  /** Force an accelerator instead of detecting it ("kvm" | "tcg"); for tests and odd hosts. */
  readonly accelOverride: 'kvm' | 'tcg' | undefined;
}

export const DEFAULT_DATA_DIR = '/var/lib/forkd';
export const DEFAULT_VM_USER = 'forkd-vm';

export function env(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** Resolve the local config: explicit flag value first, then environment, then default. */
export function loadLocalConfig(flags: { dataDir?: string | undefined } = {}): LocalConfig {
  const dataDir = flags.dataDir ?? env('FORKD_DATA_DIR') ?? DEFAULT_DATA_DIR;
  const level = env('FORKD_LOG_LEVEL');
  const accel = env('FORKD_ACCEL');
  return Object.freeze({
    dataDir: isAbsolute(dataDir) ? dataDir : resolve(dataDir),
    logLevel: level === 'debug' || level === 'info' || level === 'warn' || level === 'error' ? level : 'warn',
    vmUser: env('FORKD_VM_USER') ?? DEFAULT_VM_USER,
    accelOverride: accel === 'kvm' || accel === 'tcg' ? accel : undefined,
  });
}
