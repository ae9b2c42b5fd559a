// What the API layer needs from below core, in one place: api reaches the domain only through
// core (docs/ARCHITECTURE.md "Layers", enforced by eslint.config.js). Types of what sandboxes
// answer, the request limits of the wire contract, and host facts a node reports.
export type { EvalResult, ExecRequest, ExecResult } from '../agent/client.js';
export type { FileEntry } from '../protocol/index.js';
export {
  MAX_EVAL_CODE_BYTES,
  MAX_EXEC_STDIN_BYTES,
  MAX_LIST_ENTRIES,
  MAX_PATH_BYTES,
  MAX_PTY_DIMENSION,
} from '../protocol/limits.js';
export { PROCESS_SIGNALS } from './processes.js';
export { FEATURES, probeHostCapabilities, type Feature, type HostCapabilities } from '../host/capabilities.js';
export { hostAvailableBytes } from '../host/memory.js';
