// Guest kernel: Debian's linux-image-cloud-amd64 (a small virtio-oriented build), fetched with
// apt-get download, unpacked with dpkg-deb, and turned into a bootable ELF vmlinux.
// Stored as kernels/<release>/{vmlinux, modules/, kernel.json}; nothing else is kept.
import { mkdtemp, mkdir, readdir, readFile, rename, rm, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { ForkdError } from '../lib/errors.js';
import { run } from '../lib/exec.js';
import { extractVmlinux } from './bzimage.js';

export const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';

export interface KernelInfo {
  /** Absolute path of the bootable ELF vmlinux (PVH entry). */
  vmlinuxPath: string;
  /** Kernel release, e.g. "6.1.0-28-cloud-amd64". */
  release: string;
  /** Directory holding lib/modules/<release>/ from the package. */
  modulesRoot: string;
  /** sha256 of vmlinux (part of every image's identity). */
  sha256: string;
  /** Debian package version it came from. */
  packageVersion: string;
}

export function kernelsDir(dataDir: string): string {
  return join(dataDir, 'kernels');
}

/** The newest kernel already present, without fetching anything. */
export async function findKernel(dataDir: string): Promise<KernelInfo | undefined> {
  let names: string[];
  try {
    names = await readdir(kernelsDir(dataDir));
  } catch {
    // no kernels dir: no kernel installed, which the caller reports
    return undefined;
  }
  const infos: KernelInfo[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    try {
      const meta = JSON.parse(await readFile(join(kernelsDir(dataDir), name, 'kernel.json'), 'utf8')) as KernelInfo;
      infos.push({
        ...meta,
        vmlinuxPath: join(kernelsDir(dataDir), name, 'vmlinux'),
        modulesRoot: join(kernelsDir(dataDir), name, 'modules'),
      });
    } catch {
      /* incomplete or foreign entry: ignored */
    }
  }
  infos.sort((a, b) => compareVersions(b.packageVersion, a.packageVersion));
  return infos[0];
}

/** Return the installed kernel, fetching and extracting it when there is none. Idempotent. */
export async function ensureKernel(opts: {
  dataDir: string;
  onProgress?: (msg: string) => void;
  signal?: AbortSignal;
}): Promise<KernelInfo> {
  const existing = await findKernel(opts.dataDir);
  if (existing) return existing;
  const progress = opts.onProgress ?? (() => undefined);
  await mkdir(kernelsDir(opts.dataDir), { recursive: true });
  const work = await mkdtemp(join(kernelsDir(opts.dataDir), '.fetch-'));
  // apt's download sandbox user must be able to write here (avoids a warning, not a failure).
  await chmod(work, 0o777);
  try {
    progress(`downloading ${KERNEL_META_PACKAGE}`);
    await run('apt-get', ['download', KERNEL_META_PACKAGE], { cwd: work, timeoutMs: 300_000 });
    const metaDeb = (await readdir(work)).find((f) => f.endsWith('.deb'));
    if (!metaDeb) throw new ForkdError('host_error', `apt-get download ${KERNEL_META_PACKAGE} produced no .deb`);
    const depends = (await run('dpkg-deb', ['-f', join(work, metaDeb), 'Depends'])).stdout;
    const pkg = /linux-image-[0-9][^\s,(]*/.exec(depends)?.[0];
    if (!pkg) throw new ForkdError('host_error', `cannot find the versioned kernel package in "${depends.trim()}"`);
    progress(`downloading ${pkg}`);
    await run('apt-get', ['download', pkg], { cwd: work, timeoutMs: 300_000 });
    const deb = (await readdir(work)).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (!deb) throw new ForkdError('host_error', `apt-get download ${pkg} produced no .deb`);
    const packageVersion = (await run('dpkg-deb', ['-f', join(work, deb), 'Version'])).stdout.trim();
    progress(`unpacking ${deb}`);
    const tree = join(work, 'tree');
    await run('dpkg-deb', ['-x', join(work, deb), tree], { timeoutMs: 300_000 });
    const bootFiles = await readdir(join(tree, 'boot'));
    const vmlinuz = bootFiles.find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new ForkdError('host_error', `${deb} has no boot/vmlinuz-*`);
    const release = vmlinuz.slice('vmlinuz-'.length);
    progress(`extracting the ELF vmlinux from ${vmlinuz}`);
    const elf = await extractVmlinux(await readFile(join(tree, 'boot', vmlinuz)));
    const dest = join(work, 'out');
    await mkdir(dest);
    await writeFile(join(dest, 'vmlinux'), elf, { mode: 0o644 });
    await rename(join(tree, 'lib', 'modules', release), join(dest, 'modules'));
    const info: Omit<KernelInfo, 'vmlinuxPath' | 'modulesRoot'> = {
      release,
      packageVersion,
      sha256: createHash('sha256').update(elf).digest('hex'),
    };
    await writeFile(join(dest, 'kernel.json'), `${JSON.stringify(info, null, 2)}\n`);
    const final = join(kernelsDir(opts.dataDir), release);
    await rm(final, { recursive: true, force: true });
    await rename(dest, final);
    progress(`kernel ${release} ready`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const found = await findKernel(opts.dataDir);
  if (!found) throw new ForkdError('host_error', 'kernel extraction finished but no kernel was found');
  return found;
}

/** Compare Debian-ish versions numerically piece by piece (enough for kernel package versions). */
export function compareVersions(a: string, b: string): number {
  const pa = a
    .split(/[^0-9]+/)
    .filter(Boolean)
    .map(Number);
  const pb = b
    .split(/[^0-9]+/)
    .filter(Boolean)
    .map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
