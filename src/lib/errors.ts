// One error class for the whole project, with a closed set of stable codes. The API maps
// codes to HTTP statuses with `httpStatusOf`; the CLI maps them to exit codes. Messages name
// the thing, the bad value and the next step (STYLE rule 4); `cause` is kept.

export const ERROR_CODES = {
  invalid_argument: 400,
  invalid_tag: 400,
  invalid_id: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  conflict: 409,
  already_exists: 409,
  invalid_state: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  headers_too_large: 431,
  incompatible_snapshot: 422,
  corrupt_snapshot: 422,
  busy: 503,
  unavailable: 503,
  audit_unavailable: 503,
  /** The spawn asks for an isolation feature this daemon's host or privileges do not allow. */
  feature_unavailable: 503,
  insufficient_storage: 507,
  timeout: 504,
  boot_failed: 500,
  vmm_error: 500,
  agent_error: 502,
  host_error: 500,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ForkdError extends Error {
  readonly code: ErrorCode;
  /** Extra structured facts for logs and API bodies (never secrets). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ForkdError';
    this.code = code;
    this.details = options?.details;
  }
}

export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CODES[code];
}

export function isForkdError(err: unknown, code?: ErrorCode): err is ForkdError {
  return err instanceof ForkdError && (code === undefined || err.code === code);
}

/** Message of any throwable, for logs and wrapping. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** errno code of a Node system error (`ENOENT`, ...), or undefined. */
export function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}
