// The host's TSC rate, for guests under TCG: QEMU answers a guest's rdtsc with the host's own
// TSC, and the guest is told the rate on its kernel command line (`tsc_early_khz`, which spares
// it a calibration that can hang under TCG). Told a wrong rate, its clock runs fast or slow by
// that ratio: 30% fast on a 2.6 GHz host told 2 GHz (measured, +1.5 s every 5 s). KVM guests
// use kvmclock and need none of this.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { buildHostHelper } from './nothp.js';

const execFileAsync = promisify(execFile);

/** Built by `forkd setup` beside forkd-nothp (root only; a host-wide libexec dir). */
export const TSC_PROBE_PATH = '/usr/local/libexec/forkd/forkd-tsc';

/** What a guest is told when nothing better is known (the rate of the machine this was first measured on). */
export const ASSUMED_TSC_KHZ = 2_000_000;

export interface TscFacts {
  khz: number;
  /** measured: forkd-tsc against CLOCK_MONOTONIC_RAW; cpuinfo: `cpu MHz` with constant_tsc; assumed: neither. */
  source: 'measured' | 'cpuinfo' | 'assumed';
}

export function buildTscProbe(out = TSC_PROBE_PATH): Promise<string> {
  return buildHostHelper('forkd-tsc', out);
}

/** `cpu MHz` of the first CPU as kHz, when its flags say the TSC ticks at a constant rate. */
export function cpuinfoTscKhz(cpuinfo: string): number | undefined {
  const first = cpuinfo.split(/\n\s*\n/)[0] ?? '';
  const flags = /^flags\s*:\s*(.*)$/m.exec(first)?.[1]?.split(/\s+/) ?? [];
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)$/m.exec(first)?.[1]);
  if (!flags.includes('constant_tsc') || !(mhz > 1)) return undefined;
  return Math.round(mhz * 1000);
}

export async function hostTscKhz(probe = TSC_PROBE_PATH): Promise<TscFacts> {
  try {
    const { stdout } = await execFileAsync(probe, [], { timeout: 5000 });
    const khz = Number(stdout.trim());
    if (Number.isInteger(khz) && khz > 1000) return { khz, source: 'measured' };
  } catch {
    // not built (no `forkd setup` as root) or it failed: fall back to what /proc says
  }
  const fromCpuinfo = cpuinfoTscKhz(await readFile('/proc/cpuinfo', 'utf8').catch(() => '')); // no /proc: assumed below
  if (fromCpuinfo !== undefined) return { khz: fromCpuinfo, source: 'cpuinfo' };
  return { khz: ASSUMED_TSC_KHZ, source: 'assumed' };
}
