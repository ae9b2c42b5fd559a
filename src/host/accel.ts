// Accelerator choice: KVM only where it is real hardware virtualization, TCG otherwise.
// Measured (QEMU-NOTES "Accelerator"): on PVM hosts /dev/kvm exists and opens, but
// /proc/cpuinfo has no vmx/svm; a stock guest kernel under it crawls and `-cpu host` even
// aborts QEMU ("failed to set MSR 0x10a"). So an openable /dev/kvm alone is not enough.
import { open, readFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { messageOf } from '../lib/errors.js';

export type Accel = 'kvm' | 'tcg';

export interface AccelFacts {
  /** /dev/kvm opened O_RDWR (then closed). */
  kvmOpenable: boolean;
  /** Why it did not open, e.g. "ENOENT: no such file or directory, open '/dev/kvm'". */
  kvmOpenError?: string;
  /** Flags of the first CPU in /proc/cpuinfo. */
  cpuFlags: string[];
  /** Forced choice (config FORKD_ACCEL); honored even when it looks wrong, with a warning. */
  override?: Accel;
}

export interface AccelDecision {
  accel: Accel;
  /** One sentence: what was observed that led to the choice. */
  reason: string;
  /** Plain warning for doctor/logs when the choice is slow or likely broken. */
  warning?: string;
}

const TCG_COST = 'using TCG (software emulation, ~10-50x slower)';

/** The accelerator rule, without I/O. */
export function decideAccel(facts: AccelFacts): AccelDecision {
  const virt = facts.cpuFlags.find((f) => f === 'vmx' || f === 'svm');
  const kvmUsable = facts.kvmOpenable && virt !== undefined;
  if (facts.override === 'tcg') {
    return { accel: 'tcg', reason: 'forced by configuration (FORKD_ACCEL=tcg)' };
  }
  if (facts.override === 'kvm') {
    const decision: AccelDecision = { accel: 'kvm', reason: 'forced by configuration (FORKD_ACCEL=kvm)' };
    if (!kvmUsable) {
      decision.warning = `KVM was forced but ${whyNotKvm(facts)}; QEMU may fail to start or guests may crawl`;
    }
    return decision;
  }
  if (kvmUsable) {
    return { accel: 'kvm', reason: `/dev/kvm opens read-write and the CPU flags have ${virt}` };
  }
  const why = whyNotKvm(facts);
  return { accel: 'tcg', reason: why, warning: `${why}; ${TCG_COST}` };
}

function whyNotKvm(facts: AccelFacts): string {
  if (!facts.kvmOpenable) {
    const error = facts.kvmOpenError ?? 'unknown error';
    const hint = error.includes('EACCES') ? ' (add this user to the kvm group)' : '';
    return `/dev/kvm cannot be opened read-write: ${error}${hint}`;
  }
  return '/dev/kvm opens but the CPU flags have no vmx/svm: this is nested/software virtualization (PVM?), guest kernels crawl under it';
}

/** QEMU arguments for an accelerator. */
export function accelArgs(accel: Accel): string[] {
  return accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max'];
}

/**
 * Flags of the first `flags` line of /proc/cpuinfo, e.g.
 * `flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov ... vmx ...`
 */
export function parseCpuFlags(cpuinfo: string): string[] {
  const line = cpuinfo.split('\n').find((l) => /^flags\s*:/.test(l));
  if (line === undefined) return [];
  return line
    .slice(line.indexOf(':') + 1)
    .trim()
    .split(/\s+/)
    .filter((f) => f !== '');
}

/** Probe the host (open /dev/kvm, read /proc/cpuinfo) and apply the rule. */
export async function detectAccel(override?: Accel): Promise<AccelDecision> {
  const facts: AccelFacts = { kvmOpenable: false, cpuFlags: [] };
  if (override !== undefined) facts.override = override;
  try {
    const handle = await open('/dev/kvm', constants.O_RDWR);
    await handle.close();
    facts.kvmOpenable = true;
  } catch (error) {
    // Node's message carries the errno: "EACCES: permission denied, open '/dev/kvm'".
    facts.kvmOpenError = messageOf(error);
  }
  try {
    facts.cpuFlags = parseCpuFlags(await readFile('/proc/cpuinfo', 'utf8'));
  } catch {
    // No /proc/cpuinfo (not Linux?): no flags, so no KVM; the reason says "no vmx/svm".
  }
  return decideAccel(facts);
}
