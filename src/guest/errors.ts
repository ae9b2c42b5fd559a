// Errors the agent reports to the host: a wire code from the protocol's closed set and a
// message that names the thing and the value. Anything else becomes `internal`.
// Imported module by module (not from the protocol index) so the JS worker's bundle, which
// uses GuestError, does not pull in the op validators.
import { ProtocolError } from '../protocol/check.js';
import type { GuestErrorCode, WireError } from '../protocol/frames.js';
import { MAX_ERROR_MESSAGE_CHARS } from '../protocol/limits.js';

export class GuestError extends Error {
  constructor(
    readonly code: GuestErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'GuestError';
  }
}

export function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

const ERRNO_CODES: Record<string, GuestErrorCode> = {
  ENOENT: 'not_found',
  EEXIST: 'exists',
  ENOTEMPTY: 'exists',
  EACCES: 'permission_denied',
  EPERM: 'permission_denied',
  EROFS: 'permission_denied',
  EISDIR: 'bad_request',
  ENOTDIR: 'bad_request',
  EINVAL: 'bad_request',
  ENAMETOOLONG: 'bad_request',
  EFBIG: 'too_large',
  ENOSPC: 'io_error',
};

/** Wraps a file-system error: `files.read /etc/x: ENOENT: no such file or directory`. */
export function fsError(err: unknown, what: string): GuestError {
  if (err instanceof GuestError) return err;
  const errno = errnoOf(err);
  const message = err instanceof Error ? err.message : String(err);
  return new GuestError((errno && ERRNO_CODES[errno]) || 'io_error', `${what}: ${message}`);
}

export function toWireError(err: unknown): WireError {
  const code: GuestErrorCode =
    err instanceof GuestError ? err.code : err instanceof ProtocolError ? 'bad_request' : 'internal';
  const message = err instanceof Error ? err.message : String(err);
  return { code, message: message.slice(0, MAX_ERROR_MESSAGE_CHARS) };
}
