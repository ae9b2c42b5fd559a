// The interactive-process registry the E2B `process` service runs on: core's SandboxProcesses
// of the live sandbox (one per sandbox, every process killed when the sandbox is released).
import type { LiveSandbox } from '../../core/controller/live.js';
import type { SandboxProcesses } from '../../core/processes.js';

export type { ProcessEvent, ProcessInfo, ProcessSignal } from '../../core/processes.js';
export type Processes = SandboxProcesses;

export function processesOf(live: LiveSandbox): Processes {
  return live.processes;
}
