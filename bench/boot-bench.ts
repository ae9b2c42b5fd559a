// Parent boot (issue 12): what a cold boot of the default image spends, and what an RTC in
// the machine changes. Without one (QEMU's microvm `rtc=off`, forkd's machine until
// 2026-12-02) the guest kernel waits out RTC timeouts twice per boot: reading the wall clock
// early in start_kernel, then probing rtc_cmos. Rounds alternate the variants so drift in this
// shared machine's speed does not favour one. Children of a snapshot of each kind are then
// restored one at a time, to show what an RTC costs a child (translated blocks and CPU until
// the agent answered identity).
import type { CoreContext } from '../src/core/context.js';
import { coldBoot } from '../src/core/cold-boot.js';
import { createSnapshot } from '../src/core/snapshot-create.js';
import { removeSnapshot } from '../src/core/snapshot-store.js';
import { percentileOf } from '../src/core/fork.js';
import { measureChildren, type ChildCost } from './tuning-bench.js';

export interface BootVariant {
  name: string;
  rtc: boolean;
  /** `cryptomgr.notests=1`: skip the guest kernel's crypto self-tests at boot (measured, not adopted). */
  skipCryptoSelfTests: boolean;
}

export interface BootRow {
  variant: string;
  coldBootMs: number[];
  coldBootMedianMs: number;
  /** A snapshot made this way, and its children. */
  snapshot: { createMs: number; child: ChildCost };
}

export const BOOT_VARIANTS: BootVariant[] = [
  { name: 'no RTC (before)', rtc: false, skipCryptoSelfTests: false },
  { name: 'RTC (now)', rtc: true, skipCryptoSelfTests: false },
  { name: 'RTC, cryptomgr.notests=1 (not adopted)', rtc: true, skipCryptoSelfTests: true },
];

export async function bootBench(
  core: CoreContext,
  opts: { image: string; memMiB: number; rounds: number; childRuns: number; log: (s: string) => void },
): Promise<BootRow[]> {
  const boots = new Map<string, number[]>(BOOT_VARIANTS.map((v) => [v.name, []]));
  for (let round = 0; round < opts.rounds; round++) {
    for (const v of round % 2 === 0 ? BOOT_VARIANTS : [...BOOT_VARIANTS].reverse()) {
      const r = await coldBoot(core, {
        image: opts.image,
        memMiB: opts.memMiB,
        vcpus: 1,
        bootTimeoutMs: 300_000,
        rtc: v.rtc,
        skipCryptoSelfTests: v.skipCryptoSelfTests,
      });
      boots.get(v.name)?.push(r.readyMs);
      opts.log(`cold boot, ${v.name}: ${r.readyMs.toFixed(0)} ms`);
    }
  }
  const rows: BootRow[] = [];
  for (const v of BOOT_VARIANTS) {
    const coldBootMs = boots.get(v.name) ?? [];
    const tag = `bench-boot-${rows.length}-${Date.now().toString(36)}`;
    const t0 = performance.now();
    await createSnapshot(core, {
      tag,
      image: opts.image,
      memMiB: opts.memMiB,
      vcpus: 1,
      warmup: [],
      bootTimeoutMs: 300_000,
      rtc: v.rtc,
      skipCryptoSelfTests: v.skipCryptoSelfTests,
    });
    const createMs = performance.now() - t0;
    try {
      const child = await measureChildren(core, tag, opts.childRuns);
      rows.push({
        variant: v.name,
        coldBootMs,
        coldBootMedianMs: percentileOf(coldBootMs, 0.5),
        snapshot: { createMs, child },
      });
      opts.log(`${v.name}: snapshot ${createMs.toFixed(0)} ms, child CPU at ready ${child.cpuAtReadyMs} ms`);
    } finally {
      await removeSnapshot(core.paths, tag).catch(() => undefined);
    }
  }
  return rows;
}

export function bootMarkdown(rows: BootRow[]): string {
  const ms = (v: number): string => (Number.isNaN(v) ? '-' : `${v.toFixed(0)} ms`);
  return [
    '| variant | cold boot until the agent answers (median; runs) | snapshot create | child: ready (N=1) | child: CPU at ready | child: TBs at ready | child: CPU of the first exec | PSS / idle child (N=10) |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => {
      const c = r.snapshot.child;
      return `| ${r.variant} | **${ms(r.coldBootMedianMs)}** (${r.coldBootMs.map((x) => x.toFixed(0)).join(', ')}) | ${ms(r.snapshot.createMs)} | ${ms(c.readyMs)} | ${ms(c.cpuAtReadyMs)} | ${c.tbsAtReady} | ${ms(c.cpuFirstExecMs)} | ${c.pssPerChildMiBN10.toFixed(1)} MiB |`;
    }),
  ].join('\n');
}
