// Kernel modules for the initramfs. The cloud kernel builds the virtio drivers as modules and
// its package ships no modules.dep, so dependencies come from each .ko's `depends=` field
// (modinfo), resolved into a load order where every module follows what it needs.
import { readdir } from 'node:fs/promises';
import { join, basename } from 'node:path';
import { ForkdError } from '../lib/errors.js';
import { run } from '../lib/exec.js';

/** What the guest needs: the agent port, entropy, the NIC, the root disk and its overlay. */
export const GUEST_MODULES = ['virtio_mmio', 'virtio_console', 'virtio_net', 'virtio_blk', 'virtio_rng', 'overlay'];

/** Module names use "_" and "-" interchangeably (virtio-rng.ko is "virtio_rng"). */
export function normalizeModuleName(name: string): string {
  return name.replace(/-/g, '_');
}

export async function indexModules(root: string): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name.endsWith('.ko')) index.set(normalizeModuleName(basename(entry.name, '.ko')), path);
    }
  };
  await walk(root);
  return index;
}

/** Pure: given each module's dependencies, the load order for `wanted` (dependencies first). */
export function loadOrder(wanted: readonly string[], depsOf: (name: string) => readonly string[]): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: string[]): void => {
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting')
      throw new ForkdError('host_error', `module dependency cycle: ${[...chain, name].join(' -> ')}`);
    state.set(name, 'visiting');
    for (const dep of depsOf(name)) visit(normalizeModuleName(dep), [...chain, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const w of wanted) visit(normalizeModuleName(w), []);
  return order;
}

/** Resolve GUEST_MODULES in a kernel's module tree: [{name, path}] in load order. */
export async function resolveGuestModules(
  modulesRoot: string,
  wanted = GUEST_MODULES,
): Promise<{ name: string; path: string }[]> {
  const index = await indexModules(modulesRoot);
  const deps = new Map<string, string[]>();
  for (const name of wanted)
    if (!index.has(normalizeModuleName(name)))
      throw new ForkdError('host_error', `kernel module ${name} not found under ${modulesRoot}`);
  const depsOf = (name: string): string[] => deps.get(name) ?? [];
  // Fill `deps` breadth-first with modinfo before computing the order.
  const queue = wanted.map(normalizeModuleName);
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (deps.has(name)) continue;
    const path = index.get(name);
    if (!path)
      throw new ForkdError('host_error', `kernel module ${name} (a dependency) not found under ${modulesRoot}`);
    const out = (await run('modinfo', ['-F', 'depends', path])).stdout.trim();
    const list = out
      ? out
          .split(',')
          .map((d) => normalizeModuleName(d.trim()))
          .filter(Boolean)
      : [];
    deps.set(name, list);
    queue.push(...list);
  }
  return loadOrder(wanted, depsOf).map((name) => ({ name, path: index.get(name)! }));
}
