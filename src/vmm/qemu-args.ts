// Pure argv builder for QEMU's `microvm` machine. No I/O here: everything QEMU needs is in
// the spec, so the builder is unit-tested and a child's command line can be compared with
// its parent's. Device order matters: a restored child must present exactly the parent's
// virtio-mmio layout, so the layout is derived from `DeviceLayout` alone.

import { accelArgs, type Accel } from '../host/accel.js';

export type { Accel } from '../host/accel.js';

/** The virtual hardware of a VM. Recorded in snapshot.json; a child must match it exactly. */
export interface DeviceLayout {
  machine: 'microvm';
  memMiB: number;
  vcpus: number;
  /** A read-only root disk (virtio-blk) for images with Debian packages. */
  rootDisk: boolean;
  /** Guest MAC of the always-present virtio-net NIC. */
  mac: string;
  /**
   * An RTC (mc146818 on the ISA bus). Snapshots made before 2026-12-02 have none (absent =
   * false) and their children must keep it so. Without one the guest kernel waits out RTC
   * timeouts at every boot: a TCG cold boot took 5.4 s without, 2.9 s with (bench/results/boot.md).
   */
  rtc?: boolean;
}

export type NetBackend = { kind: 'none' } | { kind: 'tap'; ifname: string };

export interface QemuSpec {
  binary: string;
  /** argv prefix that starts QEMU (forkd-nothp under TCG); not part of QEMU's own argv. */
  launcher?: string[];
  accel: Accel;
  layout: DeviceLayout;
  kernelPath: string;
  initrdPath: string;
  kernelCmdline: string;
  /** Guest RAM file. share=true: RAM *is* the file (parent). false: private CoW map (child). */
  memPath: string;
  memShare: boolean;
  /** QEMU >= 8.2 can map the file read-only yet keep private writes (rom=off). */
  memReadonlyPrivate: boolean;
  rootDiskPath?: string;
  net: NetBackend;
  qmpSocket: string;
  agentSocket: string;
  consoleLog: string;
  /** Start paused waiting for a migration stream (restore or materialize). */
  incoming: boolean;
  /** `-S`: stay paused after an incoming migration of a running VM (BRANCH materialize). */
  startPaused?: boolean;
  /** TCG translation cache size in MiB; small keeps idle children cheap. */
  tcgTbSizeMiB?: number;
}

export const AGENT_PORT_NAME = 'org.forkd.agent';

/** The seccomp policy from the security model: no spawn, no setuid, no obsolete syscalls. */
export const SANDBOX_ARG = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

/**
 * Guest kernel arguments that shrink what a restored child runs, chosen by measurement
 * (bench/results/child-tuning.md): under TCG every kernel path a child takes is translated
 * afresh in that child. TCG only: KVM hosts keep the kernel's defaults.
 * - mitigations=off: TCG does not speculate, so the mitigations are pure cost (entry code).
 * - nowatchdog nosoftlockup: a vCPU starved by a busy host is not a lockup; no watchdog timers.
 * - psi=0 cgroup_disable=memory: no pressure or memcg accounting on every switch and fault.
 * - lsm=capability: no AppArmor/TOMOYO hooks on every open and exec inside the sandbox (the
 *   isolation boundary is the VM, not an LSM inside it).
 */
export const TCG_CHILD_TUNING = [
  'mitigations=off',
  'nowatchdog',
  'nosoftlockup',
  'psi=0',
  'cgroup_disable=memory',
  'lsm=capability',
] as const;

export function kernelCmdline(
  accel: Accel,
  extra: readonly string[] = [],
  opts: { tuned?: boolean; tscKhz?: number; skipCryptoSelfTests?: boolean } = {},
): string {
  // Under TCG the guest can hang calibrating the TSC without these (QEMU-NOTES "Accelerator");
  // the rate must be the host's (QEMU's TCG rdtsc is the host TSC; host/tsc.ts), or the guest
  // clock runs off by the ratio. 2 GHz when the caller knows nothing better.
  const khz = Math.round(opts.tscKhz ?? 2_000_000);
  // Skipping the kernel's crypto self-tests saves ~0.3 s of a ~3 s TCG boot but costs every
  // child of the snapshot ~800 more translated blocks (bench/results/boot.md): not done,
  // except to measure it.
  const selfTests = opts.skipCryptoSelfTests === true ? ['cryptomgr.notests=1'] : [];
  const tcg = accel === 'tcg' ? [`tsc_early_khz=${khz}`, 'tsc=reliable', 'no_timer_check', ...selfTests] : [];
  const tuning = accel === 'tcg' && opts.tuned !== false ? TCG_CHILD_TUNING : [];
  // The sandbox network is IPv4 only (allow-lists, NAT): no IPv6 autoconfiguration, whose
  // timers every child of a young parent would otherwise run (DAD, router solicitations).
  return ['console=ttyS0', 'panic=-1', 'quiet', 'loglevel=3', 'ipv6.disable=1', ...tcg, ...tuning, ...extra].join(' ');
}

/** The accelerator arguments, with a bounded TCG translation cache when one is asked for. */
export function accelWithCache(accel: Accel, tcgTbSizeMiB?: number): string[] {
  const args = accelArgs(accel);
  if (accel === 'tcg' && tcgTbSizeMiB !== undefined) args[1] = `${args[1]},tb-size=${tcgTbSizeMiB}`;
  return args;
}

export function qemuArgs(spec: QemuSpec): string[] {
  const { layout } = spec;
  assertSafeArgValue(spec.memPath, 'memPath');
  const memSize = `${layout.memMiB}M`;
  const memOpts = [`memory-backend-file`, `id=mem`, `size=${memSize}`, `mem-path=${spec.memPath}`];
  memOpts.push(spec.memShare ? 'share=on' : 'share=off');
  if (!spec.memShare && spec.memReadonlyPrivate) memOpts.push('readonly=on', 'rom=off');

  const args = [
    '-M',
    `microvm,x-option-roms=off,isa-serial=on,rtc=${layout.rtc === true ? 'on' : 'off'},memory-backend=mem`,
    ...accelWithCache(spec.accel, spec.tcgTbSizeMiB),
    '-smp',
    String(layout.vcpus),
    '-m',
    memSize,
    '-object',
    memOpts.join(','),
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-display',
    'none',
    '-kernel',
    spec.kernelPath,
    '-initrd',
    spec.initrdPath,
    '-append',
    spec.kernelCmdline,
    '-serial',
    `file:${spec.consoleLog}`,
    // Agent channel: virtio-serial port; QEMU listens, only the daemon's user can connect.
    '-device',
    'virtio-serial-device',
    '-chardev',
    `socket,id=agent,path=${spec.agentSocket},server=on,wait=off`,
    '-device',
    `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
    // Entropy source for the guest's hwrng (identity reseeding still happens via the agent).
    '-object',
    'rng-random,id=rng0,filename=/dev/urandom',
    '-device',
    'virtio-rng-device,rng=rng0',
    // Every VM carries one NIC so any snapshot can later be forked with or without networking:
    // children without a network keep an unconnected hub port (QEMU-NOTES "Networking").
    '-netdev',
    netdevArg(spec.net),
    '-device',
    `virtio-net-device,netdev=n0,mac=${layout.mac}`,
  ];
  if (layout.rootDisk) {
    if (!spec.rootDiskPath) throw new Error('qemuArgs: layout.rootDisk is set but rootDiskPath is missing');
    assertSafeArgValue(spec.rootDiskPath, 'rootDiskPath');
    // Read-only and shared by every child; writes land in the guest's tmpfs overlay.
    args.push(
      '-drive',
      `id=root,file=${spec.rootDiskPath},format=raw,if=none,readonly=on`,
      '-device',
      'virtio-blk-device,drive=root',
    );
  }
  args.push('-qmp', `unix:${spec.qmpSocket},server=on,wait=off`, '-sandbox', SANDBOX_ARG);
  if (spec.incoming) args.push('-incoming', 'defer');
  if (spec.startPaused) args.push('-S');
  return args;
}

function netdevArg(net: NetBackend): string {
  if (net.kind === 'none') return 'hubport,id=n0,hubid=0';
  assertSafeArgValue(net.ifname, 'tap ifname');
  return `tap,id=n0,ifname=${net.ifname},script=no,downscript=no`;
}

/**
 * QEMU's option parser splits on commas (",," escapes one). Our paths come from validated
 * tags and ids under the data dir, so a comma or newline means something upstream is wrong.
 */
function assertSafeArgValue(value: string, what: string): void {
  if (/[,\n\0]/.test(value))
    throw new Error(`qemuArgs: ${what} contains a comma, newline or NUL: ${JSON.stringify(value)}`);
}
