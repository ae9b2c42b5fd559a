// `forkd doctor`: is this host ready to boot and fork microVMs, and if not, what to run.
// Each check is a small async function returning pass/warn/fail with a hint; the command only
// runs them, renders, and exits 1 when any failed. TCG is a warning, not a failure: it works,
// just slower.
import { access } from 'node:fs/promises';
import { arch, platform, release } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_DATA_DIR, loadLocalConfig } from '../../lib/config.js';
import { messageOf } from '../../lib/errors.js';
import { detectAccel, type AccelDecision } from '../../host/accel.js';
import { missingPackages } from '../../host/apt.js';
import { detectCgroups, missingControllers } from '../../host/cgroups-detect.js';
import { formatBytes, freeSpace, GIB } from '../../host/disk.js';
import { detectNetns, systemToolStatus } from '../../host/netns-detect.js';
import { capabilitiesOutcome } from '../../host/capabilities.js';
import { QEMU_BINARY, qemuHasSandbox, qemuMachines, qemuVersion } from '../../host/qemu-version.js';
import { lookupUser, useraddArgs } from '../../host/users.js';
import { findUnreachable, groupsOf, unreachableMessage } from '../../host/data-dir-access.js';
import { findKernel } from '../../image/kernel.js';
import { EXIT_FAILURE, EXIT_OK, type Command } from '../command.js';
import { DATA_DIR_FLAG, JSON_FLAG, parseFlags } from '../flags.js';

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  hint?: string;
}

export type CheckOutcome = Omit<CheckResult, 'name'>;

export interface DoctorEnv {
  dataDir: string;
  vmUser: string;
  accel: AccelDecision;
}

export interface Check {
  name: string;
  run(env: DoctorEnv): Promise<CheckOutcome>;
}

export interface DoctorReport {
  checks: CheckResult[];
  summary: Record<CheckStatus, number>;
  accel: AccelDecision;
}

// Where the "how to fix" points: setup with the same data dir doctor looked at.
const setupHint = ({ dataDir }: DoctorEnv): string =>
  `run: sudo forkd setup${dataDir === DEFAULT_DATA_DIR ? '' : ` --data-dir ${dataDir}`}`;
export const DISK_PASS_BYTES = 5 * GIB;
export const DISK_WARN_BYTES = 1 * GIB;

const pass = (detail: string): CheckOutcome => ({ status: 'pass', detail });
const warn = (detail: string, hint?: string): CheckOutcome => ({ status: 'warn', detail, ...(hint ? { hint } : {}) });
const fail = (detail: string, hint?: string): CheckOutcome => ({ status: 'fail', detail, ...(hint ? { hint } : {}) });

/** How to get KVM, matched to why it was not chosen; undefined when TCG was forced. */
function kvmHint(reason: string): string | undefined {
  if (reason.includes('FORKD_ACCEL')) return undefined;
  if (reason.includes('no vmx/svm')) return 'for KVM, run on a host that exposes vmx/svm to this OS';
  if (reason.includes('EACCES')) return 'for KVM, add this user to the kvm group';
  return 'for KVM, load kvm_intel or kvm_amd on a host with vmx/svm';
}

export function diskOutcome(freeBytes: number, measuredPath: string): CheckOutcome {
  const detail = `${formatBytes(freeBytes)} free at ${measuredPath}`;
  if (freeBytes >= DISK_PASS_BYTES) return pass(detail);
  const hint = `free space there or move state with --data-dir (want >= ${formatBytes(DISK_PASS_BYTES)})`;
  return freeBytes >= DISK_WARN_BYTES ? warn(detail, hint) : fail(detail, hint);
}

export const CHECKS: readonly Check[] = [
  {
    name: 'platform',
    run: async () => {
      await Promise.resolve();
      const ok = platform() === 'linux' && arch() === 'x64';
      const detail = `${platform()} ${arch() === 'x64' ? 'x86_64' : arch()}, kernel ${release()}`;
      return ok ? pass(detail) : fail(detail, 'forkd runs on Linux x86_64 only');
    },
  },
  {
    name: 'qemu',
    run: async () => pass((await qemuVersion()).raw),
  },
  {
    name: 'accel',
    run: async ({ accel }) => {
      await Promise.resolve();
      if (accel.accel === 'kvm') return accel.warning ? warn(`kvm: ${accel.warning}`) : pass(`kvm: ${accel.reason}`);
      return warn(`tcg: ${accel.warning ?? accel.reason}`, kvmHint(accel.reason));
    },
  },
  {
    name: 'microvm',
    run: async () =>
      (await qemuMachines()).includes('microvm')
        ? pass(`${QEMU_BINARY} -machine help lists microvm`)
        : fail(`${QEMU_BINARY} has no microvm machine type`, 'install Debian qemu-system-x86 (QEMU >= 4.2)'),
  },
  {
    name: 'seccomp',
    run: async () =>
      (await qemuHasSandbox())
        ? pass(`${QEMU_BINARY} supports -sandbox`)
        : fail(`${QEMU_BINARY} was built without -sandbox (seccomp)`, 'install Debian qemu-system-x86'),
  },
  {
    name: 'cgroups',
    run: async () => {
      const info = await detectCgroups();
      const where = (['memory', 'cpu', 'pids'] as const).map((c) => `${c}=${info.controllers[c] ?? 'missing'}`);
      const detail = `${info.mode}: ${where.join(' ')}`;
      const missing = missingControllers(info);
      return missing.length === 0
        ? pass(detail)
        : warn(detail, `per-sandbox limits need ${missing.join(', ')}; enable those cgroup controllers`);
    },
  },
  {
    name: 'netns',
    run: async (env) => {
      const { ip, netns } = await detectNetns();
      if (!ip.present) return warn('ip (iproute2) not found', setupHint(env));
      return netns.ok ? pass('ip netns add/delete works') : warn(netns.error ?? 'ip netns add failed', 'run as root');
    },
  },
  {
    name: 'nftables',
    run: async (env) => {
      const nft = await systemToolStatus('nft', ['--version']);
      return nft.present ? pass(nft.version ?? nft.path ?? 'nft') : warn('nft (nftables) not found', setupHint(env));
    },
  },
  { name: 'capabilities', run: async () => capabilitiesOutcome() },
  {
    name: 'vm-user',
    run: async (env) => {
      const { vmUser } = env;
      const user = await lookupUser(vmUser);
      if (user) return pass(`${vmUser} uid=${user.uid} gid=${user.gid}`);
      return fail(
        `user ${vmUser} does not exist`,
        `${setupHint(env)} (or: sudo useradd ${useraddArgs(vmUser).join(' ')})`,
      );
    },
  },
  {
    // QEMU runs as the VM user: every directory down to the data dir must let it through.
    name: 'data-dir-access',
    run: async ({ dataDir, vmUser }) => {
      const user = await lookupUser(vmUser);
      if (!user) return warn(`not checked: user ${vmUser} does not exist (see vm-user)`);
      const id = { name: user.name, uid: user.uid, gids: await groupsOf(user) };
      const u = await findUnreachable(dataDir, id);
      if (!u) return pass(`${vmUser} can traverse every directory down to ${dataDir}`);
      return fail(unreachableMessage(dataDir, id, u), `chmod ${u.who}+x ${u.dir}, or move the data dir`);
    },
  },
  {
    name: 'gcc',
    run: async (env) => {
      const gcc = await systemToolStatus('gcc', ['--version']);
      return gcc.present ? pass(gcc.version ?? 'gcc') : warn('gcc not found (builds the guest helper)', setupHint(env));
    },
  },
  {
    name: 'busybox-static',
    run: async (env) =>
      (await missingPackages(['busybox-static'])).length === 0
        ? pass('busybox-static installed')
        : warn('busybox-static not installed (images are built from it)', setupHint(env)),
  },
  {
    name: 'kernel',
    run: async (env) => {
      const { dataDir } = env;
      const kernel = await findKernel(dataDir);
      return kernel
        ? pass(`${kernel.release} at ${kernel.vmlinuxPath}`)
        : fail(`no guest kernel in ${dataDir}`, setupHint(env));
    },
  },
  {
    name: 'image',
    run: async (env) => {
      const manifest = join(env.dataDir, 'images', 'default', 'image.json');
      try {
        await access(manifest);
        return pass(manifest);
      } catch {
        // Missing or unreadable, either way no image to boot: the check's answer.
        return fail(`default image missing (${manifest})`, setupHint(env));
      }
    },
  },
  {
    name: 'disk',
    run: async ({ dataDir }) => {
      const space = await freeSpace(dataDir);
      return diskOutcome(space.freeBytes, space.measuredPath);
    },
  },
];

/** Run every check concurrently; a check that throws is a failure carrying the error. */
export async function runChecks(checks: readonly Check[], env: DoctorEnv): Promise<CheckResult[]> {
  return Promise.all(
    checks.map(async (check): Promise<CheckResult> => {
      try {
        return { name: check.name, ...(await check.run(env)) };
      } catch (error) {
        const hint =
          check.name === 'qemu' || check.name === 'microvm' || check.name === 'seccomp' ? setupHint(env) : undefined;
        return { name: check.name, ...fail(messageOf(error), hint) };
      }
    }),
  );
}

export function summarize(results: readonly CheckResult[]): Record<CheckStatus, number> {
  const summary = { pass: 0, warn: 0, fail: 0 };
  for (const r of results) summary[r.status] += 1;
  return summary;
}

export function exitCodeOf(results: readonly CheckResult[]): number {
  return results.some((r) => r.status === 'fail') ? EXIT_FAILURE : EXIT_OK;
}

const MARK: Record<CheckStatus, string> = { pass: '✓', warn: '⚠', fail: '✗' };

export function renderHuman(results: readonly CheckResult[]): string {
  const width = Math.max(0, ...results.map((r) => r.name.length));
  const lines = results.map(
    (r) => `${MARK[r.status]} ${r.name.padEnd(width)}  ${r.detail}${r.hint ? `  → ${r.hint}` : ''}`,
  );
  const s = summarize(results);
  return `${lines.join('\n')}\npass=${s.pass} warn=${s.warn} fail=${s.fail}\n`;
}

export function doctorReport(results: CheckResult[], accel: AccelDecision): DoctorReport {
  return { checks: results, summary: summarize(results), accel };
}

const FLAGS = { json: JSON_FLAG, 'data-dir': DATA_DIR_FLAG } as const;

export const doctorCommand: Command = {
  name: 'doctor',
  group: 'host',
  modes: 'host',
  summary: 'Check this host: QEMU, accelerator, cgroups, netns, VM user, data dir access, kernel, image, disk',
  usage: ['doctor [--json] [--data-dir DIR]'],
  flags: FLAGS,
  examples: ['forkd doctor', 'forkd doctor --json --data-dir /srv/forkd'],
  notes: ['One line per check (pass, warn, fail) with what to run when it is not a pass; exit 1 when any failed.'],
  async run(argv, ctx) {
    const { values } = parseFlags(argv, FLAGS);
    const config = loadLocalConfig({ dataDir: values['data-dir'] });
    const accel = await detectAccel(config.accelOverride);
    const results = await runChecks(CHECKS, { dataDir: config.dataDir, vmUser: config.vmUser, accel });
    ctx.out(values.json ? `${JSON.stringify(doctorReport(results, accel), null, 2)}\n` : renderHuman(results));
    return exitCodeOf(results);
  },
};
