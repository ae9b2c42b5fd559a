// A sandbox the daemon holds: either restored by this process (a `Sandbox`, QEMU is our child)
// or re-adopted after a restart (QEMU is not our child; see reattach.ts). The manager sees one
// shape: the agent, a promise that settles when QEMU is gone, kill and detach.
import type { AgentClient } from '../../agent/client.js';
import type { QmpClient } from '../../vmm/qmp.js';
import { silentLogger, type Logger } from '../../lib/log.js';
import type { Sandbox } from '../sandbox.js';
import { SandboxProcesses } from '../processes.js';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LiveSandbox {
  readonly id: string;
  readonly pid: number;
  readonly agent: AgentClient;
  /** Interactive processes (pty, stdin, many consumers); all killed when the sandbox is released. */
  readonly processes: SandboxProcesses;
  /** QEMU's monitor (BRANCH drives a live migration through it). */
  readonly qmp: QmpClient;
  /** Settles (with a reason) when QEMU is gone, whoever stopped it. */
  readonly exited: Promise<string>;
  /** Stop QEMU (if still running), close the connections, remove the run dir. Idempotent. Ends `processes`. */
  kill(): Promise<void>;
  /**
   * Close the connections and stop watching; QEMU keeps running (daemon shutdown). The guest
   * cancels the requests of a closed connection, so interactive processes end with it.
   */
  detach(): void;
}

/** Wraps a sandbox restored by this process. */
export function liveFromSandbox(sandbox: Sandbox, logger: Logger = silentLogger): LiveSandbox {
  const exited = sandbox.vm.process
    .waitExit()
    .then(async (e) =>
      e.signal === 'SIGKILL' && (await killedByOom(sandbox))
        ? 'oom'
        : `qemu exited (code ${String(e.code)}, signal ${String(e.signal)})`,
    );
  const processes = new SandboxProcesses(sandbox.agent, logger);
  return {
    id: sandbox.id,
    pid: sandbox.pid,
    agent: sandbox.agent,
    processes,
    qmp: sandbox.vm.qmp,
    exited,
    kill: () => {
      processes.dispose('the sandbox was released');
      return sandbox.dispose();
    },
    detach: () => {
      processes.dispose('the daemon stopped watching this sandbox');
      sandbox.agent.close();
      sandbox.vm.qmp.close();
    },
  };
}

/**
 * Whether the kernel's OOM killer ended this sandbox. The kernel bumps the cgroup's oom_kill
 * counter just after it sends SIGKILL, so a fast reaper can see the exit first: look again
 * for a moment before calling it anything else.
 */
async function killedByOom(sandbox: Sandbox): Promise<boolean> {
  if (!sandbox.isolation) return false;
  for (let i = 0; i < 10; i++) {
    if (await sandbox.isolation.oomKilled().catch(() => false)) return true; // the cgroup is unreadable or gone: not evidence of an OOM kill
    await sleep(50);
  }
  return false;
}
