// forkd's TypeScript SDK (the `forkd` package): imports nothing but node: built-ins and these files.
export { Controller, DEFAULT_URL, DEFAULT_TIMEOUT_MS, type ControllerOptions, type WaitOptions } from './controller.js';
export {
  Sandbox,
  SandboxPaginator,
  DEFAULT_SANDBOX_TIMEOUT_MS,
  type ConnectionOptions,
  type SandboxCreateOptions,
  type SandboxListOptions,
  type SandboxForkOptions,
} from './sandbox.js';
export { Commands, DEFAULT_COMMAND_TIMEOUT_MS, type CommandHandle, type RunOptions } from './commands.js';
export { Filesystem, type EntryList, type FileRequestOptions } from './files.js';
export { Pty, type PtyCreateOptions, type PtyHandle, type PtyResult, type PtySize } from './pty.js';
export { ForkdApiError, CommandExitError, isForkdApiError, type CommandResult } from './errors.js';
export type { SandboxInfo, EntryInfo, WriteInfo, FileType } from './shapes.js';
export type { CallOptions } from './http.js';
export type * from './types.js';
