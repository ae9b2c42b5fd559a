// Kept in step with package.json by hand (checked by a unit test).
export const FORKD_VERSION = '0.1.0';
/** Version of the host<->guest agent protocol; bumped on any incompatible frame change. */
export const AGENT_PROTOCOL_VERSION = 3;
