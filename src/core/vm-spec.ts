// Builds the QEMU spec of a parent or a child from a snapshot's (or image's) facts, so the two
// can only differ where they must: RAM mapping (shared vs private) and the incoming stream.
import { join } from 'node:path';
import type { HostFacts } from './host-facts.js';
import type { DeviceLayout, NetBackend, QemuSpec } from '../vmm/qemu-args.js';
import { RUN_FILES, SNAPSHOT_FILES } from './paths.js';

/** TCG translation cache per child: small keeps idle children cheap (QEMU-NOTES "Fork"). */
export const CHILD_TCG_TB_MIB = 16;

export function vmSpec(opts: {
  facts: HostFacts;
  layout: DeviceLayout;
  kernelCmdline: string;
  /** Directory holding vmlinux, initrd.img, [rootfs.ext4] and memory.bin. */
  snapshotDir: string;
  runDir: string;
  role: 'parent' | 'child';
  net?: NetBackend;
}): QemuSpec {
  const { facts, layout, snapshotDir, runDir } = opts;
  const child = opts.role === 'child';
  return {
    binary: facts.qemuBinary,
    launcher: facts.qemuLauncher,
    accel: facts.accel.accel,
    layout,
    kernelPath: join(snapshotDir, SNAPSHOT_FILES.kernel),
    initrdPath: join(snapshotDir, SNAPSHOT_FILES.initrd),
    kernelCmdline: opts.kernelCmdline,
    memPath: join(snapshotDir, SNAPSHOT_FILES.memory),
    memShare: !child,
    memReadonlyPrivate: child && facts.readonlyPrivateMem,
    ...(layout.rootDisk ? { rootDiskPath: join(snapshotDir, SNAPSHOT_FILES.rootDisk) } : {}),
    net: opts.net ?? { kind: 'none' },
    qmpSocket: join(runDir, RUN_FILES.qmp),
    agentSocket: join(runDir, RUN_FILES.agent),
    consoleLog: join(runDir, RUN_FILES.console),
    incoming: child,
    ...(child ? { tcgTbSizeMiB: CHILD_TCG_TB_MIB } : {}),
  };
}
