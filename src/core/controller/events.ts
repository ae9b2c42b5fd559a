// What the controller core tells its caller (the daemon wires these to the audit log and the
// metrics). Core never imports the API layer; it only calls these hooks.
export type ControllerEventName =
  | 'sandbox.created'
  | 'sandbox.killed'
  | 'sandbox.expired'
  | 'sandbox.failed'
  | 'sandbox.adopted'
  | 'snapshot.created'
  | 'snapshot.failed'
  | 'snapshot.deleted';

export interface ControllerEvent {
  event: ControllerEventName;
  sandboxId?: string;
  snapshotTag?: string;
  reason?: string;
  /** The API request that caused it, when one did. */
  requestId?: string;
}

export interface ControllerHooks {
  event(e: ControllerEvent): void;
  /** One child became ready: from the create request's start, and its restore alone. */
  spawned(timings: { spawnMs: number; restoreMs: number }): void;
}

export const noHooks: ControllerHooks = { event: () => undefined, spawned: () => undefined };
