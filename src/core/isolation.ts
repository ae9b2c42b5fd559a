// Per-sandbox isolation beyond the VM boundary: a cgroup with memory/CPU/PID limits, and
// optionally a network namespace with an egress policy. `prepareIsolation` builds both before
// QEMU starts and says how to start it (argv wrapper, NIC backend, whether QEMU gets uid/gid
// from the spawn or from the wrapper); `onSpawned` puts QEMU into the cgroup before the restore
// faults in any guest memory. Everything is named from the sandbox id, so `attachIsolation`
// can find it again after a daemon restart.
import { ForkdError, messageOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { assertSandboxId } from '../lib/ids.js';
import { TeardownStack } from '../lib/teardown.js';
import { SandboxCgroup, validateLimits, type CgroupLimits } from '../host/cgroups.js';
import { detectCgroups } from '../host/cgroups-detect.js';
import { GUEST_TAP, SandboxNetns } from '../host/netns.js';
import { parseEgressPolicy, type EgressPolicy } from '../host/nftables.js';
import type { NetBackend } from '../vmm/qemu-args.js';
import type { CoreContext } from './context.js';

export interface IsolationOptions extends CgroupLimits {
  /** A network namespace with this egress policy (absent: the caller's default); without it the NIC stays unconnected. */
  network?: { egress?: unknown };
}

declare const validated: unique symbol;

/**
 * Isolation options that passed validateIsolationOptions, the only function that makes one:
 * limits in range, the egress policy parsed and the default applied. Everything below the
 * validation (prepareIsolation, launchVm, restores) takes this type, so nothing re-checks.
 */
export type IsolationSpec = Readonly<CgroupLimits> & {
  readonly network?: { readonly egress: EgressPolicy };
  readonly [validated]: true;
};

export interface Isolation {
  readonly id: string;
  /** Namespace name when the sandbox has a network. */
  readonly netns: string | undefined;
  /** The namespace's address on the host bridge. */
  readonly bridgeAddress: string | undefined;
  readonly cgroup: SandboxCgroup;
  /** argv prefix for QEMU (enters the namespace and drops to the VM user). */
  readonly wrapper: string[] | undefined;
  readonly net: NetBackend;
  /** Whether QEMU must be spawned with the VM user's uid/gid (false: the wrapper drops them). */
  readonly runAsUidGid: boolean;
  /** Put the freshly spawned QEMU into the cgroup: before the restore, so its memory is charged. */
  onSpawned(pid: number): Promise<void>;
  /** Whether the kernel OOM-killed QEMU for exceeding the memory limit (answers after dispose too). */
  oomKilled(): Promise<boolean>;
  /** Remove the namespace and cgroup; call after QEMU has exited. Idempotent. */
  dispose(): Promise<void>;
}

/**
 * Validate options before anything touches the host (limits, egress CIDRs), and resolve the
 * egress of a namespace that names none to `defaultEgress` (the daemon's `--default-egress`):
 * the one place either happens.
 */
export function validateIsolationOptions(opts: IsolationOptions, defaultEgress: EgressPolicy): IsolationSpec {
  validateLimits(opts);
  const out: { -readonly [K in keyof CgroupLimits]: CgroupLimits[K] } & { network?: { egress: EgressPolicy } } = {};
  if (opts.memoryMiB !== undefined) out.memoryMiB = opts.memoryMiB;
  if (opts.cpuLimit !== undefined) out.cpuLimit = opts.cpuLimit;
  if (opts.pidsLimit !== undefined) out.pidsLimit = opts.pidsLimit;
  if (opts.network !== undefined) {
    out.network = {
      egress: parseEgressPolicy(opts.network.egress === undefined ? defaultEgress : opts.network.egress),
    };
  }
  return Object.freeze(out) as IsolationSpec;
}

class SandboxIsolation implements Isolation {
  #disposed: Promise<void> | undefined;

  constructor(
    readonly id: string,
    readonly cgroup: SandboxCgroup,
    private readonly network: SandboxNetns | undefined,
    readonly wrapper: string[] | undefined,
  ) {}

  get netns(): string | undefined {
    return this.network?.name;
  }

  get bridgeAddress(): string | undefined {
    return this.network?.address;
  }

  get net(): NetBackend {
    return this.network ? { kind: 'tap', ifname: GUEST_TAP } : { kind: 'none' };
  }

  get runAsUidGid(): boolean {
    return this.wrapper === undefined;
  }

  onSpawned(pid: number): Promise<void> {
    return this.cgroup.addProcess(pid);
  }

  oomKilled(): Promise<boolean> {
    return this.cgroup.oomKilled();
  }

  dispose(): Promise<void> {
    this.#disposed ??= (async () => {
      const errors: string[] = [];
      for (const part of [this.network, this.cgroup]) {
        await part?.dispose().catch((e: unknown) => errors.push(String(e)));
      }
      if (errors.length > 0) {
        this.#disposed = undefined;
        throw new ForkdError('host_error', `isolation of ${this.id} not fully removed: ${errors.join('; ')}`);
      }
    })();
    return this.#disposed;
  }
}

export async function prepareIsolation(ctx: CoreContext, id: string, opts: IsolationSpec): Promise<Isolation> {
  assertSandboxId(id);
  const vmUser = ctx.facts.vmUser;
  if (vmUser === undefined) {
    throw new ForkdError(
      'host_error',
      'sandbox isolation (cgroups, network namespaces) needs root; run the daemon or forkd as root',
    );
  }
  const logger = ctx.logger.child({ sandbox: id });
  const teardown = new TeardownStack();
  try {
    const cgroup = await SandboxCgroup.create(id, opts, await detectCgroups());
    teardown.push('cgroup', () => cgroup.dispose());
    let network: SandboxNetns | undefined;
    let wrapper: string[] | undefined;
    if (opts.network !== undefined) {
      network = await SandboxNetns.setup(id, {
        uid: vmUser.uid,
        gid: vmUser.gid,
        egress: opts.network.egress,
        logger,
      });
      const ns = network;
      teardown.push('netns', () => ns.dispose());
      wrapper = await ns.wrapper(vmUser.uid, vmUser.gid);
    }
    teardown.release();
    logger.debug('isolation ready', { netns: network?.name, bridgeAddress: network?.address, ...opts });
    return new SandboxIsolation(id, cgroup, network, wrapper);
  } catch (error) {
    await teardown.unwind();
    throw error;
  }
}

/**
 * The isolation of an existing sandbox, found from its id alone (after a daemon restart):
 * enough to ask about an OOM kill and to dispose it. Nothing is created.
 */
export async function attachIsolation(id: string, opts: { network: boolean }): Promise<Isolation> {
  assertSandboxId(id);
  const cgroup = await SandboxCgroup.forId(id);
  const network = opts.network ? await SandboxNetns.forId(id) : undefined;
  return new SandboxIsolation(id, cgroup, network, undefined);
}

/**
 * After a sandbox's QEMU is gone (a re-adopted one, or one found dead at start-up): whether the
 * OOM killer ended it, and remove its cgroup and namespace. Idempotent; never throws (what
 * cannot be removed now is left for `forkd netns cleanup`).
 */
export async function releaseIsolation(
  id: string,
  opts: { network: boolean; logger?: Logger },
): Promise<{ oom: boolean }> {
  try {
    const isolation = await attachIsolation(id, opts);
    // No OOM counter to read (no cgroup of its own, or already gone): not an OOM kill.
    const oom = await isolation.oomKilled().catch(() => false);
    await isolation.dispose();
    return { oom };
  } catch (err) {
    opts.logger?.warn('isolation not fully removed; `forkd netns cleanup` removes what is left', {
      sandbox: id,
      error: messageOf(err),
    });
    return { oom: false };
  }
}
