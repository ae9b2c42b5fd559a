// forkd-nothp: the launcher really turns transparent huge pages off for what it runs (and what
// that runs), and QEMU is launched through it only under TCG.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildNothp, qemuLauncher } from '../../src/host/nothp.js';
import { kernelCmdline, TCG_CHILD_TUNING } from '../../src/vmm/qemu-args.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'forkd-nothp-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('forkd-nothp', () => {
  void it('runs a program, and its children, with THP disabled', async () => {
    const bin = await buildNothp(join(dir, 'forkd-nothp'));
    assert.match(execFileSync('grep', ['THP_enabled', '/proc/self/status']).toString(), /THP_enabled:\s+1/);
    const direct = execFileSync(bin, ['grep', 'THP_enabled', '/proc/self/status']).toString();
    assert.match(direct, /THP_enabled:\s+0/);
    const grandchild = execFileSync(bin, ['sh', '-c', 'grep THP_enabled /proc/self/status']).toString();
    assert.match(grandchild, /THP_enabled:\s+0/);
  });

  void it('is QEMU’s launcher under TCG only, and only when built', async () => {
    const bin = join(dir, 'forkd-nothp');
    assert.deepEqual(await qemuLauncher('tcg', bin), [bin]);
    assert.deepEqual(await qemuLauncher('kvm', bin), []);
    assert.deepEqual(await qemuLauncher('tcg', join(dir, 'missing')), []);
  });
});

void describe('guest kernel tuning', () => {
  void it('applies under TCG only, and can be turned off to measure it', () => {
    for (const arg of TCG_CHILD_TUNING) {
      assert.ok(kernelCmdline('tcg').split(' ').includes(arg), arg);
      assert.ok(!kernelCmdline('kvm').split(' ').includes(arg), arg);
      assert.ok(!kernelCmdline('tcg', [], { tuned: false }).split(' ').includes(arg), arg);
    }
    assert.ok(kernelCmdline('kvm').includes('ipv6.disable=1'));
  });
});
