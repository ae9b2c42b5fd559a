// Host side of the guest-agent protocol.
export {
  AgentClient,
  connectAgent,
  type ConnectOptions,
  type EvalRequest,
  type EvalResult,
  type WarmResult,
  type ExecOptions,
  type ExecRequest,
  type ExecResult,
} from './client.js';
export { AgentFiles, DEFAULT_FILE_TIMEOUT_MS, type FileList, type RequestOptions } from './files.js';
export type { FileEntry } from '../protocol/index.js';
