// `forkd image build`: kernel + initramfs (+ a read-only root disk for images with Debian
// packages) + image.json, written in a temp dir and renamed into place. Builds are cached by
// their inputs: the same kernel, busybox, agent, runtimes, scripts and packages give the same
// id. The default image is lean (busybox + the native agent): every guest instruction is paid
// in every child under TCG, and every page of the initramfs in every snapshot's RAM.
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { linkOrCopy } from '../lib/fsutil.js';
import { join } from 'node:path';
import { ForkdError } from '../lib/errors.js';
import { digestFile, sha256File, sha256Of } from '../lib/hash.js';
import { assertTag } from '../lib/tag.js';
import { writeCpioGz, type CpioEntry } from './cpio.js';
import { assertPackageNames, buildDebianTree, installGuestFiles, makeExt4 } from './debian-rootfs.js';
import {
  busyboxApplets,
  forkdGuestFiles,
  HOST_BUSYBOX,
  jsWorkerBundlePath,
  RUNTIMES,
  type GuestFile,
  type Runtime,
} from './guest-files.js';
import { AGENT_CFLAGS, agentSources, buildGuestAgent, pythonWorkerSource } from './guest-helper.js';
import { BUSYBOX, INIT_STAGE1, INIT_STAGE2, INITTAB, AGENT_RUN } from './guest-init.js';
import { ensureKernel, type KernelInfo } from './kernel.js';
import { IMAGE_FORMAT_VERSION, imageDir, imagesDir, readImageManifest, type ImageManifest } from './manifest.js';
import { resolveGuestModules } from './modules.js';

export type { ImageManifest } from './manifest.js';

/** Bump when the layout of what the builder produces changes, so caches are rebuilt. */
const BUILDER_VERSION = 4;

export interface BuildImageOptions {
  dataDir: string;
  name: string;
  packages: string[];
  /** Language runtimes beside busybox: `node` adds Node.js and the JS eval worker. Default none. */
  runtimes?: readonly string[];
  /** Python modules the warm worker pre-imports; default: numpy when python3-numpy is installed. */
  pythonPreload?: string[];
  force?: boolean;
  onProgress?: (msg: string) => void;
}

export function defaultPythonPreload(packages: readonly string[]): string[] {
  return packages.includes('python3-numpy') ? ['numpy'] : [];
}

export async function buildImage(opts: BuildImageOptions): Promise<ImageManifest> {
  const name = assertTag(opts.name, 'image name');
  const packages = [...new Set(opts.packages)].sort();
  assertPackageNames(packages);
  const runtimes = [...new Set(opts.runtimes ?? [])].sort();
  for (const r of runtimes) {
    if (!(RUNTIMES as readonly string[]).includes(r))
      throw new ForkdError('invalid_argument', `unknown runtime ${JSON.stringify(r)}; known: ${RUNTIMES.join(', ')}`);
  }
  const runtimeList = runtimes as Runtime[];
  const pythonPreload = opts.pythonPreload ?? defaultPythonPreload(packages);
  for (const m of pythonPreload) {
    if (!/^[A-Za-z_][A-Za-z0-9_.]{0,99}$/.test(m))
      throw new ForkdError('invalid_argument', `invalid python module name ${JSON.stringify(m)}`);
  }
  const progress = opts.onProgress ?? (() => undefined);
  const kernel = await ensureKernel({ dataDir: opts.dataDir, onProgress: progress });
  const inputsHash = await hashInputs(kernel, packages, pythonPreload, runtimeList);
  const id = inputsHash.slice(0, 16);

  if (!opts.force) {
    const existing = await readImageManifest(opts.dataDir, name).catch(() => undefined); // no image or an unreadable manifest: build it
    if (existing && existing.id === id) {
      progress(`image ${name} is up to date (${id})`);
      return existing;
    }
  }

  await mkdir(imagesDir(opts.dataDir), { recursive: true });
  const work = await mkdtemp(join(imagesDir(opts.dataDir), `.build-${name}-`));
  try {
    const out = join(work, 'out');
    await mkdir(out);
    progress('compiling the guest agent');
    const agentPath = join(work, 'forkd-agent');
    await buildGuestAgent(agentPath);
    const guestFiles = await forkdGuestFiles({
      agentPath,
      pythonWorkerPath: await pythonWorkerSource(),
      runtimes: runtimeList,
    });
    const rootDisk = packages.length > 0;

    if (rootDisk) {
      const tree = join(work, 'tree');
      await buildDebianTree(tree, packages, progress);
      await installGuestFiles(tree, guestFiles, { keepExistingLibs: true });
      progress('writing the ext4 root disk');
      await makeExt4(tree, join(out, 'rootfs.ext4'));
      await rm(tree, { recursive: true, force: true });
    }

    progress('resolving kernel modules');
    const modules = await resolveGuestModules(kernel.modulesRoot);
    progress('writing the initramfs');
    const entries = await initramfsEntries({ modules, guestFiles: rootDisk ? [] : guestFiles, rootDisk });
    await writeCpioGz(entries, join(out, 'initrd.img'));
    await linkOrCopy(kernel.vmlinuxPath, join(out, 'vmlinux'));

    const files: ImageManifest['files'] = {};
    for (const f of ['vmlinux', 'initrd.img', ...(rootDisk ? ['rootfs.ext4'] : [])])
      files[f] = await digestFile(join(out, f));
    const hasPython = rootDisk && packages.some((p) => p === 'python3' || p.startsWith('python3-'));
    const manifest: ImageManifest = {
      formatVersion: IMAGE_FORMAT_VERSION,
      name,
      id,
      createdAt: new Date().toISOString(),
      kernel: { release: kernel.release, packageVersion: kernel.packageVersion, sha256: kernel.sha256 },
      nodeVersion: runtimeList.includes('node') ? process.version : null,
      runtimes: runtimeList,
      packages,
      pythonPreload,
      hasPython,
      rootDisk,
      files,
    };
    await writeFile(join(out, 'image.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const final = imageDir(opts.dataDir, name);
    // Swap in: move the old image aside first so a crash never leaves a half image in place.
    const old = join(work, 'old');
    await rename(final, old).catch(() => undefined); // no old image on a first build
    await rename(out, final);
    progress(`image ${name} built (${id})`);
    return manifest;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function initramfsEntries(opts: {
  modules: { name: string; path: string }[];
  guestFiles: GuestFile[];
  rootDisk: boolean;
}): Promise<CpioEntry[]> {
  const dirs = new Set<string>([
    '/bin',
    '/sbin',
    '/dev',
    '/proc',
    '/sys',
    '/tmp',
    '/run',
    '/root',
    '/etc',
    '/etc/forkd',
    '/lib',
    '/lib/modules',
    '/lib/modules/forkd',
    '/usr',
    '/usr/bin',
    '/usr/sbin',
    '/usr/lib',
    '/usr/lib/forkd',
  ]);
  for (const f of opts.guestFiles) {
    const parts = f.guestPath.split('/').slice(1, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(`/${parts.slice(0, i).join('/')}`);
  }
  const entries: CpioEntry[] = [...dirs]
    .sort()
    .map((path) => ({ type: 'dir', path, mode: path === '/tmp' ? 0o1777 : 0o755 }));
  entries.push({ type: 'chardev', path: '/dev/console', mode: 0o600, major: 5, minor: 1 });
  entries.push({ type: 'file', path: BUSYBOX, mode: 0o755, source: HOST_BUSYBOX });
  for (const applet of await busyboxApplets()) {
    if (applet !== 'busybox') entries.push({ type: 'symlink', path: `/bin/${applet}`, target: BUSYBOX });
  }
  entries.push({ type: 'file', path: '/init', mode: 0o755, source: Buffer.from(INIT_STAGE1) });
  entries.push({
    type: 'file',
    path: '/etc/forkd/modules.load',
    source: Buffer.from(opts.modules.map((m) => m.name).join('\n') + '\n'),
  });
  for (const m of opts.modules) entries.push({ type: 'file', path: `/lib/modules/forkd/${m.name}.ko`, source: m.path });
  if (opts.rootDisk) entries.push({ type: 'file', path: '/etc/forkd/rootdisk', source: Buffer.from('/dev/vda\n') });
  for (const f of opts.guestFiles) {
    if (f.guestPath === BUSYBOX) continue;
    entries.push({ type: 'file', path: f.guestPath, mode: f.mode, source: f.source });
  }
  return entries;
}

async function hashInputs(
  kernel: KernelInfo,
  packages: string[],
  pythonPreload: string[],
  runtimes: Runtime[],
): Promise<string> {
  const withNode = runtimes.includes('node');
  const [busybox, agent, pyWorker, node, jsWorker] = await Promise.all([
    sha256File(HOST_BUSYBOX),
    agentSources().then((files) => Promise.all(files.map((f) => readFile(f)))),
    pythonWorkerSource().then((p) => readFile(p)),
    withNode ? sha256File(process.execPath) : null,
    withNode
      ? sha256File(jsWorkerBundlePath()).catch(() => {
          throw new ForkdError(
            'host_error',
            `JS eval worker bundle ${jsWorkerBundlePath()} is missing; run: npm run build`,
          );
        })
      : null,
  ]);
  return sha256Of(
    JSON.stringify({
      BUILDER_VERSION,
      kernel: kernel.sha256,
      busybox,
      node,
      jsWorker,
      cflags: AGENT_CFLAGS,
      packages,
      pythonPreload,
      runtimes,
    }),
    ...agent,
    pyWorker,
    INIT_STAGE1,
    INIT_STAGE2,
    INITTAB,
    AGENT_RUN,
  );
}
