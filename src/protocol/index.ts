// Shared by the host client (src/agent) and the in-guest agent (src/guest). Imports nothing of
// ours but the version constants, so the guest bundle stays small and host-free.
export { AGENT_PROTOCOL_VERSION } from '../lib/version.js';
export * from './check.js';
export * from './frames.js';
export * from './limits.js';
export * from './lines.js';
export * from './ops.js';
export * from './wire.js';
export { FORKD_VERSION } from '../lib/version.js';
