// Facts about the machine a benchmark ran on, written beside every result.
import { cpus, totalmem, release } from 'node:os';
import type { CoreContext } from '../src/core/context.js';
import { qemuVersionString } from '../src/core/host-facts.js';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memGiB: number;
  kernel: string;
  node: string;
  qemu: string;
  accel: string;
  accelReason: string;
  date: string;
}

export function machineInfo(core: CoreContext): MachineInfo {
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    qemu: qemuVersionString(core.facts.qemu),
    accel: core.facts.accel.accel,
    accelReason: core.facts.accel.warning ?? core.facts.accel.reason,
    date: new Date().toISOString(),
  };
}

export function machineMarkdown(m: MachineInfo): string {
  return [
    `- Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memGiB} GiB RAM, Linux ${m.kernel}, Node ${m.node}`,
    `- QEMU ${m.qemu}, accelerator **${m.accel.toUpperCase()}** (${m.accelReason})`,
    `- Date: ${m.date}`,
  ].join('\n');
}
