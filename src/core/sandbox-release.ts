// The one release of a sandbox's host objects, once its QEMU is gone: its isolation (cgroup,
// network namespace) and then its run dir. A sandbox this process restored passes the
// Isolation it holds (a failure to remove it is thrown, after the run dir is gone); one
// re-adopted after a restart, or found dead or orphaned at start-up, is found again from its
// id alone (names are derived from ids), and what cannot be removed now is logged and left
// for `forkd netns cleanup`. Callers: Sandbox.dispose, the adopted sandbox's kill and death
// watch, reconciliation.
import type { CoreContext } from './context.js';
import { releaseIsolation, type Isolation } from './isolation.js';
import { removeRunDir } from './run-dir.js';

export async function releaseSandboxHost(
  ctx: CoreContext,
  id: string,
  opts: { isolation?: Isolation | undefined; network?: boolean },
): Promise<{ oom: boolean }> {
  try {
    if (opts.isolation) {
      await opts.isolation.dispose();
      return { oom: false }; // a held sandbox asks its Isolation about OOM when QEMU exits
    }
    return await releaseIsolation(id, { network: opts.network ?? false, logger: ctx.logger });
  } finally {
    await removeRunDir(ctx.paths, id);
  }
}
