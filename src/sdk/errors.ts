// The SDK's one error class: the API's `code` and HTTP status when the daemon answered, or a
// client code (unreachable, aborted, client_timeout, protocol_error) with status 0 when not.
import type { ApiErrorCode, ClientErrorCode } from './types.js';

export class ForkdApiError extends Error {
  readonly code: ApiErrorCode | ClientErrorCode;
  /** HTTP status of the answer; 0 when no answer arrived. */
  readonly status: number;
  /** The daemon's X-Request-Id (look it up in its log and audit log). */
  readonly requestId: string | undefined;

  constructor(
    code: ApiErrorCode | ClientErrorCode,
    status: number,
    message: string,
    options?: { cause?: unknown; requestId?: string | undefined },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ForkdApiError';
    this.code = code;
    this.status = status;
    this.requestId = options?.requestId;
  }
}

export function isForkdApiError(err: unknown, code?: string): err is ForkdApiError {
  return err instanceof ForkdApiError && (code === undefined || err.code === code);
}
