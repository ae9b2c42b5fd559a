// The sandbox lifecycle as one table: every state change the daemon makes goes through
// StateStore.updateSandbox, which refuses one this table does not list (a bug, not a request:
// `internal`). Written down once, so a new path cannot quietly resurrect a failed sandbox or
// skip `stopping` (whose reason reconcile reads to finish a DELETE).
//   creating -> running | failed                 restore done / restore failed
//   running  -> stopping | failed                DELETE or TTL / QEMU died, re-attach failed
//   stopping -> stopping | stopped | failed      DELETE during a stop / TTL stop done or a
//                                                restart found it mid-stop
//   stopped, failed: final (the row is deleted or kept for the record)
import { ForkdError } from '../../lib/errors.js';
import type { SandboxState } from './store.js';

export const SANDBOX_TRANSITIONS: Readonly<Record<SandboxState, readonly SandboxState[]>> = {
  creating: ['running', 'failed'],
  running: ['stopping', 'failed'],
  stopping: ['stopping', 'stopped', 'failed'],
  stopped: [],
  failed: [],
};

export function assertTransition(id: string, from: SandboxState, to: SandboxState): void {
  if (!SANDBOX_TRANSITIONS[from].includes(to))
    throw new ForkdError('internal', `sandbox ${id}: no transition from ${from} to ${to} (core/state/transitions.ts)`);
}
