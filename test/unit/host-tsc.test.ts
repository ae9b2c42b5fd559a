// The host TSC rate a TCG guest is told (src/host/tsc.ts): forkd-tsc measures it, /proc/cpuinfo
// is the fallback only with constant_tsc, and the guest's kernel command line carries it.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ASSUMED_TSC_KHZ, buildTscProbe, cpuinfoTscKhz, hostTscKhz } from '../../src/host/tsc.js';
import { kernelCmdline } from '../../src/vmm/qemu-args.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'forkd-tsc-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('host TSC rate', () => {
  void it('forkd-tsc measures a plausible rate, stable to 0.5% between runs', async () => {
    const bin = await buildTscProbe(join(dir, 'forkd-tsc'));
    const a = Number(execFileSync(bin).toString());
    const b = Number(execFileSync(bin).toString());
    assert.ok(a > 100_000 && a < 10_000_000, `${a} kHz`);
    assert.ok(Math.abs(a - b) / a < 0.005, `${a} vs ${b} kHz`);
    const facts = await hostTscKhz(bin);
    assert.equal(facts.source, 'measured');
    assert.ok(Math.abs(facts.khz - a) / a < 0.005);
  });

  void it('falls back to cpu MHz only with constant_tsc, else to the assumed rate', async () => {
    const cpu = (mhz: string, flags: string): string =>
      `processor\t: 0\ncpu MHz\t\t: ${mhz}\nflags\t\t: fpu tsc ${flags}\n\nprocessor\t: 1\ncpu MHz\t\t: 1200.000\nflags\t\t: fpu\n`;
    assert.equal(cpuinfoTscKhz(cpu('2596.144', 'constant_tsc nonstop_tsc')), 2_596_144);
    assert.equal(cpuinfoTscKhz(cpu('2596.144', 'nonstop_tsc')), undefined, 'cpu MHz is not the TSC rate then');
    assert.equal(cpuinfoTscKhz(''), undefined);
    const missing = await hostTscKhz(join(dir, 'missing'));
    assert.ok(missing.source === 'cpuinfo' || (missing.source === 'assumed' && missing.khz === ASSUMED_TSC_KHZ));
  });

  void it("goes on a TCG guest's command line, not a KVM one's", () => {
    assert.match(kernelCmdline('tcg', [], { tscKhz: 2_596_006 }), /\btsc_early_khz=2596006 tsc=reliable\b/);
    assert.match(kernelCmdline('tcg'), /\btsc_early_khz=2000000\b/);
    assert.doesNotMatch(kernelCmdline('kvm', [], { tscKhz: 2_596_006 }), /tsc_early_khz/);
  });
});
