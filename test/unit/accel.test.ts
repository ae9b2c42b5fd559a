import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { accelArgs, decideAccel, parseCpuFlags } from '../../src/host/accel.js';

const BASE_FLAGS = ['fpu', 'vme', 'de', 'pse', 'tsc', 'msr', 'pae', 'hypervisor', 'lm'];

void describe('decideAccel', () => {
  void it('uses kvm when /dev/kvm opens and the CPU has vmx', () => {
    const d = decideAccel({ kvmOpenable: true, cpuFlags: [...BASE_FLAGS, 'vmx'] });
    assert.equal(d.accel, 'kvm');
    assert.match(d.reason, /vmx/);
    assert.equal(d.warning, undefined);
  });

  void it('uses kvm when /dev/kvm opens and the CPU has svm', () => {
    const d = decideAccel({ kvmOpenable: true, cpuFlags: [...BASE_FLAGS, 'svm'] });
    assert.equal(d.accel, 'kvm');
    assert.match(d.reason, /svm/);
  });

  void it('falls back to tcg with a warning when /dev/kvm opens but there is no vmx/svm (PVM)', () => {
    const d = decideAccel({ kvmOpenable: true, cpuFlags: BASE_FLAGS });
    assert.equal(d.accel, 'tcg');
    assert.ok(d.warning);
    assert.match(d.warning, /vmx\/svm/);
    assert.match(d.warning, /TCG/);
  });

  void it('does not take a flag substring for vmx (e.g. "vmx_ept" style names)', () => {
    const d = decideAccel({ kvmOpenable: true, cpuFlags: [...BASE_FLAGS, 'vmxe', 'svm_lock'] });
    assert.equal(d.accel, 'tcg');
  });

  void it('uses tcg with the open error when /dev/kvm is missing, even with vmx', () => {
    const error = "ENOENT: no such file or directory, open '/dev/kvm'";
    const d = decideAccel({ kvmOpenable: false, kvmOpenError: error, cpuFlags: [...BASE_FLAGS, 'vmx'] });
    assert.equal(d.accel, 'tcg');
    assert.ok(d.warning?.includes(error));
  });

  void it('suggests the kvm group when /dev/kvm is not accessible', () => {
    const d = decideAccel({ kvmOpenable: false, kvmOpenError: 'EACCES: permission denied', cpuFlags: ['vmx'] });
    assert.equal(d.accel, 'tcg');
    assert.match(d.warning ?? '', /kvm group/);
  });

  void it('honors an override to tcg on a KVM-capable host', () => {
    const d = decideAccel({ kvmOpenable: true, cpuFlags: ['vmx'], override: 'tcg' });
    assert.equal(d.accel, 'tcg');
    assert.match(d.reason, /FORKD_ACCEL=tcg/);
  });

  void it('honors an override to kvm when KVM is not usable, with a warning', () => {
    const d = decideAccel({ kvmOpenable: true, cpuFlags: BASE_FLAGS, override: 'kvm' });
    assert.equal(d.accel, 'kvm');
    assert.match(d.reason, /FORKD_ACCEL=kvm/);
    assert.match(d.warning ?? '', /vmx\/svm/);
  });

  void it('overriding to kvm on a real KVM host carries no warning', () => {
    const d = decideAccel({ kvmOpenable: true, cpuFlags: ['svm'], override: 'kvm' });
    assert.equal(d.accel, 'kvm');
    assert.equal(d.warning, undefined);
  });
});

void describe('parseCpuFlags', () => {
  void it('reads the first flags line only', () => {
    const cpuinfo = [
      'processor\t: 0',
      'vendor_id\t: GenuineIntel',
      'flags\t\t: fpu vme  de vmx',
      'bugs\t\t: spectre_v1',
      '',
      'processor\t: 1',
      'flags\t\t: fpu svm',
    ].join('\n');
    assert.deepEqual(parseCpuFlags(cpuinfo), ['fpu', 'vme', 'de', 'vmx']);
  });

  void it('returns no flags when there is no flags line', () => {
    assert.deepEqual(parseCpuFlags('processor\t: 0\n'), []);
  });
});

void describe('accelArgs', () => {
  void it('builds the QEMU arguments for each accelerator', () => {
    assert.deepEqual(accelArgs('kvm'), ['-accel', 'kvm', '-cpu', 'host']);
    assert.deepEqual(accelArgs('tcg'), ['-accel', 'tcg,thread=multi', '-cpu', 'max']);
  });
});
