// Facts about this host that every VM start needs, probed once per process: accelerator (and
// why), QEMU version, and the unprivileged user QEMU runs as.
import { ForkdError } from '../lib/errors.js';
import { hostTscKhz, type TscFacts } from '../host/tsc.js';
import type { LocalConfig } from '../lib/config.js';
import { detectAccel, type AccelDecision } from '../host/accel.js';
import { QEMU_BINARY, qemuVersion, type QemuVersion } from '../host/qemu-version.js';
import { isRoot, lookupUser, type UserInfo } from '../host/users.js';
import { qemuLauncher } from '../host/nothp.js';

export interface HostFacts {
  qemuBinary: string;
  qemu: QemuVersion;
  accel: AccelDecision;
  /** undefined when not root: QEMU then runs as the invoking (already unprivileged) user. */
  vmUser: UserInfo | undefined;
  /** QEMU >= 8.2 maps a read-only file privately (readonly=on,rom=off). */
  readonlyPrivateMem: boolean;
  /** argv prefix QEMU is started with: forkd-nothp under TCG when `forkd setup` built it. */
  qemuLauncher: string[];
  /** Under TCG: the host TSC rate a guest is told (host/tsc.ts); undefined under KVM. */
  tsc: TscFacts | undefined;
}

let cached: Promise<HostFacts> | undefined;

export function hostFacts(config: LocalConfig): Promise<HostFacts> {
  cached ??= probe(config);
  return cached;
}

async function probe(config: LocalConfig): Promise<HostFacts> {
  const [qemu, accel] = await Promise.all([
    qemuVersion(QEMU_BINARY).catch((err: unknown) => {
      throw new ForkdError('host_error', `QEMU is not usable (${String(err)}); run: forkd setup`, { cause: err });
    }),
    detectAccel(config.accelOverride),
  ]);
  let vmUser: UserInfo | undefined;
  if (isRoot()) {
    vmUser = await lookupUser(config.vmUser);
    if (!vmUser) throw new ForkdError('host_error', `the VM user "${config.vmUser}" does not exist; run: forkd setup`);
  }
  const readonlyPrivateMem = qemu.major > 8 || (qemu.major === 8 && qemu.minor >= 2);
  const launcher = await qemuLauncher(accel.accel);
  const tsc = accel.accel === 'tcg' ? await hostTscKhz() : undefined;
  return { qemuBinary: QEMU_BINARY, qemu, accel, vmUser, readonlyPrivateMem, qemuLauncher: launcher, tsc };
}

export function qemuVersionString(v: QemuVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}
