import { test } from 'node:test';
import assert from 'node:assert/strict';
import { qemuArgs, kernelCmdline, SANDBOX_ARG, type QemuSpec } from '../../src/vmm/qemu-args.js';

function spec(over: Partial<QemuSpec> = {}): QemuSpec {
  return {
    binary: 'qemu-system-x86_64',
    accel: 'tcg',
    layout: { machine: 'microvm', memMiB: 512, vcpus: 1, rootDisk: false, mac: 'aa:fc:00:00:00:01' },
    kernelPath: '/d/snapshots/t/vmlinux',
    initrdPath: '/d/snapshots/t/initrd.img',
    kernelCmdline: kernelCmdline('tcg'),
    memPath: '/d/snapshots/t/memory.bin',
    memShare: true,
    memReadonlyPrivate: false,
    net: { kind: 'none' },
    qmpSocket: '/d/run/x/qmp.sock',
    agentSocket: '/d/run/x/agent.sock',
    consoleLog: '/d/run/x/console.log',
    incoming: false,
    ...over,
  };
}

function after(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

test('parent: shared RAM file, no incoming, seccomp sandbox on', () => {
  const args = qemuArgs(spec());
  assert.deepEqual(
    after(args, '-object')[0],
    'memory-backend-file,id=mem,size=512M,mem-path=/d/snapshots/t/memory.bin,share=on',
  );
  assert.ok(!args.includes('-incoming'));
  assert.deepEqual(after(args, '-sandbox'), [SANDBOX_ARG]);
  assert.match(SANDBOX_ARG, /spawn=deny/);
  assert.match(SANDBOX_ARG, /elevateprivileges=deny/);
  assert.deepEqual(after(args, '-accel'), ['tcg,thread=multi']);
  assert.ok(args.includes('-nodefaults'));
});

test('child: private CoW mapping, incoming defer, same devices as the parent', () => {
  const parent = qemuArgs(spec());
  const child = qemuArgs(spec({ memShare: false, incoming: true, tcgTbSizeMiB: 16 }));
  assert.match(after(child, '-object')[0]!, /share=off$/);
  assert.deepEqual(after(child, '-incoming'), ['defer']);
  assert.deepEqual(after(child, '-device'), after(parent, '-device'));
  assert.deepEqual(after(child, '-accel'), ['tcg,thread=multi,tb-size=16']);
});

test('the RTC follows the layout: on for new snapshots, off for those recorded without one', () => {
  assert.match(after(qemuArgs(spec({ layout: { ...spec().layout, rtc: true } })), '-M')[0]!, /,rtc=on,/);
  // A snapshot.json from before the field existed: its children keep the parent's machine.
  assert.match(after(qemuArgs(spec()), '-M')[0]!, /,rtc=off,/);
  assert.match(after(qemuArgs(spec({ layout: { ...spec().layout, rtc: false } })), '-M')[0]!, /,rtc=off,/);
});

test('QEMU >= 8.2 child maps memory read-only but private', () => {
  const child = qemuArgs(spec({ memShare: false, memReadonlyPrivate: true, incoming: true }));
  assert.match(after(child, '-object')[0]!, /share=off,readonly=on,rom=off$/);
});

test('kvm uses the host CPU and no TCG boot arguments', () => {
  const args = qemuArgs(spec({ accel: 'kvm', kernelCmdline: kernelCmdline('kvm') }));
  assert.deepEqual(after(args, '-accel'), ['kvm']);
  assert.deepEqual(after(args, '-cpu'), ['host']);
  assert.doesNotMatch(after(args, '-append')[0]!, /tsc_early_khz/);
  assert.match(kernelCmdline('tcg'), /tsc_early_khz=2000000 tsc=reliable no_timer_check/);
});

test('root disk is attached read-only; tap backend keeps the NIC identical', () => {
  const withDisk = qemuArgs(
    spec({ layout: { ...spec().layout, rootDisk: true }, rootDiskPath: '/d/snapshots/t/rootfs.ext4' }),
  );
  assert.ok(after(withDisk, '-drive')[0]!.includes('readonly=on'));
  assert.ok(after(withDisk, '-device').includes('virtio-blk-device,drive=root'));
  const tap = qemuArgs(spec({ net: { kind: 'tap', ifname: 'tap0' } }));
  assert.deepEqual(after(tap, '-netdev'), ['tap,id=n0,ifname=tap0,script=no,downscript=no']);
  assert.deepEqual(after(tap, '-device'), after(qemuArgs(spec()), '-device'));
});

test('a comma in a path is refused (QEMU option injection)', () => {
  assert.throws(() => qemuArgs(spec({ memPath: '/d/x,share=on' })), /comma/);
  assert.throws(() => qemuArgs(spec({ layout: { ...spec().layout, rootDisk: true } })), /rootDiskPath/);
});
