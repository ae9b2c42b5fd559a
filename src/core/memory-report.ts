// What a set of children costs in memory: PSS of each QEMU (shared pages split fairly) and
// how much the host's available memory dropped since before the fork.
import { hostAvailableBytes, processPss } from '../host/memory.js';
import type { Sandbox } from './sandbox.js';

export interface MemoryReport {
  pssAvgBytes: number | undefined;
  pssMaxBytes: number | undefined;
  pssSumBytes: number;
  hostAvailableDeltaBytes: number;
}

export async function measureMemory(children: readonly Sandbox[], availableBefore: number): Promise<MemoryReport> {
  const pss = (await Promise.all(children.map((c) => processPss(c.pid)))).filter((v): v is number => v !== undefined);
  const sum = pss.reduce((a, b) => a + b, 0);
  return {
    pssAvgBytes: pss.length ? sum / pss.length : undefined,
    pssMaxBytes: pss.length ? Math.max(...pss) : undefined,
    pssSumBytes: sum,
    hostAvailableDeltaBytes: Math.max(0, availableBefore - (await hostAvailableBytes())),
  };
}
