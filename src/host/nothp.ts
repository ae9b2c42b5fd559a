// forkd-nothp, the QEMU launcher that turns transparent huge pages off for QEMU (see its C
// source for the measurement). Built by `forkd setup` into a host-wide libexec dir (the VM user
// must be able to run it, whatever data dir a daemon uses); used under TCG only, where QEMU's
// translation buffer asks for huge pages. KVM hosts start QEMU directly.
import { access, constants, mkdir, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileStatic } from '../lib/cc.js';

export const NOTHP_PATH = '/usr/local/libexec/forkd/forkd-nothp';

/** A helper's C source, in the checkout (from src/host) or beside the package (from dist/src/host). */
function helperSource(name: string): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, 'native', `${name}.c`), join(here, '..', '..', '..', 'src', 'host', 'native', `${name}.c`)];
}

async function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/** Builds (or rebuilds) the launcher; returns its path. */
export function buildNothp(out = NOTHP_PATH): Promise<string> {
  return buildHostHelper('forkd-nothp', out);
}

/** Builds one of the host's small C helpers (src/host/native/NAME.c) into `out`, atomically. */
export async function buildHostHelper(name: string, out: string): Promise<string> {
  let source: string | undefined;
  for (const candidate of helperSource(name)) {
    if (
      await access(candidate).then(
        () => true,
        () => false,
      )
    )
      source = candidate;
    if (source) break;
  }
  if (!source) throw new Error(`${name}.c not found (looked in ${helperSource(name).join(', ')})`);
  await mkdir(dirname(out), { recursive: true, mode: 0o755 });
  const tmp = `${out}.tmp-${process.pid}`;
  await compileStatic(name, [source], tmp);
  await rename(tmp, out);
  return out;
}

/** argv prefix to start QEMU with: the launcher when built and the accelerator is TCG. */
export async function qemuLauncher(accel: 'kvm' | 'tcg', path = NOTHP_PATH): Promise<string[]> {
  if (accel !== 'tcg') return [];
  return (await executable(path)) ? [path] : [];
}
