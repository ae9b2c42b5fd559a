// Guest errors -> forkd errors. The guest chooses from a closed set of wire codes; each maps
// to a code of ours, so a hostile guest cannot make the API answer 401 or 500 at will.
// The guest's own code stays in `details.guestCode`.
import type { GuestErrorCode, Op, WireError } from '../protocol/index.js';
import { ForkdError, type ErrorCode } from '../lib/errors.js';

const CODE_OF: Record<GuestErrorCode, ErrorCode> = {
  bad_request: 'invalid_argument',
  unknown_op: 'agent_error',
  busy: 'busy',
  timeout: 'timeout',
  cancelled: 'agent_error',
  not_found: 'not_found',
  exists: 'already_exists',
  permission_denied: 'forbidden',
  too_large: 'payload_too_large',
  unsupported: 'agent_error',
  exec_failed: 'agent_error',
  io_error: 'agent_error',
  internal: 'agent_error',
};

export function errorFromGuest(op: Op, error: WireError): ForkdError {
  return new ForkdError(CODE_OF[error.code], `agent ${op}: ${error.message}`, {
    details: { op, guestCode: error.code },
  });
}

export function protocolViolation(op: Op | undefined, message: string): ForkdError {
  return new ForkdError('agent_error', `agent ${op ?? 'connection'}: protocol violation: ${message}`, {
    details: { ...(op ? { op } : {}), guestCode: 'protocol_violation' },
  });
}
