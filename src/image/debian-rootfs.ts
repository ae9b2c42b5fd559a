// Images with Debian packages: mmdebstrap builds a minimal bookworm tree with the packages and
// their dependencies; mke2fs turns it into an ext4 image without mounting anything. The guest
// mounts it read-only under a tmpfs overlay, so one file on the host serves every child.
import { cp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { exists } from '../lib/fsutil.js';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ForkdError } from '../lib/errors.js';
import { run } from '../lib/exec.js';
import type { GuestFile } from './guest-files.js';

/** Debian package name syntax (policy 5.6.1); anything else never reaches apt's argv. */
export const DEBIAN_PACKAGE_PATTERN = /^[a-z0-9][a-z0-9+.-]{1,99}$/;
export const DEBIAN_SUITE = 'bookworm';
const MMDEBSTRAP_ATTEMPTS = 3;

export function assertPackageNames(packages: readonly string[]): void {
  for (const p of packages) {
    if (!DEBIAN_PACKAGE_PATTERN.test(p)) {
      throw new ForkdError(
        'invalid_argument',
        `invalid Debian package name ${JSON.stringify(p)}: use lowercase letters, digits, + - . (e.g. python3-numpy)`,
      );
    }
  }
}

export async function buildDebianTree(
  treeDir: string,
  packages: readonly string[],
  onProgress: (m: string) => void,
): Promise<void> {
  assertPackageNames(packages);
  // libstdc++6 and libgcc-s1: the host's node needs them and the essential variant lacks them.
  const include = [...new Set([...packages, 'libstdc++6', 'libgcc-s1'])].sort();
  onProgress(`mmdebstrap ${DEBIAN_SUITE} with ${include.join(', ')}`);
  const args = [
    '--variant=essential',
    '--mode=root',
    '--quiet',
    `--include=${include.join(',')}`,
    DEBIAN_SUITE,
    treeDir,
  ];
  // mmdebstrap runs `apt-get update --error-on=any`: a mirror mid-sync or a dropped fetch
  // fails the whole build, so a failed attempt is retried from an empty tree.
  for (let attempt = 1; ; attempt++) {
    try {
      await run('mmdebstrap', args, { timeoutMs: 1_200_000 });
      break;
    } catch (err) {
      if (attempt >= MMDEBSTRAP_ATTEMPTS) throw err;
      onProgress(`mmdebstrap failed (attempt ${attempt}/${MMDEBSTRAP_ATTEMPTS}); retrying`);
      await rm(treeDir, { recursive: true, force: true });
      await sleep(2000 * attempt);
    }
  }
  // Package caches are dead weight in a read-only root.
  for (const dir of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
    const path = join(treeDir, dir);
    for (const entry of await readdir(path).catch(() => [] as string[])) {
      // the tree has no apt cache: nothing to prune
      if (entry !== 'partial' && entry !== 'lock') await rm(join(path, entry), { recursive: true, force: true });
    }
  }
}

/** Copy guest files into the tree; libraries the tree already has are left alone. */
export async function installGuestFiles(
  treeDir: string,
  files: readonly GuestFile[],
  opts: { keepExistingLibs: boolean },
): Promise<void> {
  for (const f of files) {
    const dest = join(treeDir, f.guestPath);
    if (opts.keepExistingLibs && /\.so(\.|$)/.test(f.guestPath) && (await exists(dest))) continue;
    await mkdir(dirname(dest), { recursive: true });
    if (typeof f.source === 'string') await cp(f.source, dest, { dereference: true });
    else await writeFile(dest, f.source);
    await run('chmod', [f.mode.toString(8), dest]);
  }
}

export async function makeExt4(treeDir: string, outPath: string): Promise<void> {
  const { stdout } = await run('du', ['-sb', treeDir]);
  const bytes = Number(stdout.split(/\s/)[0]);
  if (!Number.isFinite(bytes)) throw new ForkdError('host_error', `cannot size ${treeDir}: du said ${stdout}`);
  const sizeMiB = Math.ceil((bytes * 1.25) / (1 << 20)) + 64;
  await run(
    'mke2fs',
    ['-q', '-F', '-t', 'ext4', '-d', treeDir, '-L', 'forkdroot', '-E', 'root_owner=0:0', outPath, `${sizeMiB}M`],
    { timeoutMs: 600_000 },
  );
}
