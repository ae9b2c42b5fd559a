// forkd's TypeScript SDK: the package's "." export. Imports nothing of forkd but these files.
export { Controller, DEFAULT_URL, DEFAULT_TIMEOUT_MS, type ControllerOptions, type WaitOptions } from './controller.js';
export {
  Sandbox,
  type SandboxCreateOptions,
  type CommandResult,
  type CommandHandle,
  type RunOptions,
} from './sandbox.js';
export { ForkdApiError, isForkdApiError } from './errors.js';
export type { CallOptions } from './http.js';
export type * from './types.js';
