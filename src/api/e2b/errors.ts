// Errors of the E2B surface's HTTP routes (the control API, /files, /health), in E2B's shape
// {"code": <HTTP status>, "message"}: the SDK reads the status (401 -> AuthenticationError,
// 404 -> its not-found errors, 429 -> RateLimitError after its own Retry-After retries, 502 on
// an in-sandbox route -> the sandbox is gone) and shows the message.
import type { ServerResponse } from 'node:http';
import { ForkdError, httpStatusOf, messageOf } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';

const MAX_MESSAGE_CHARS = 4000;

/** A route or option forkd does not have: 501 with what to do instead. */
export function unsupported(what: string, instead: string): E2bHttpError {
  return new E2bHttpError(501, `forkd does not support ${what}; ${instead}`);
}

/** An error with an explicit status (the control API's own refusals). */
export class E2bHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'E2bHttpError';
  }
}

export function httpErrorOf(err: unknown, logger: Logger, requestId: string): E2bHttpError {
  if (err instanceof E2bHttpError) return err;
  if (err instanceof ForkdError) {
    const retry = err.details?.retryAfterSecs;
    const headers: Record<string, string> = typeof retry === 'number' ? { 'Retry-After': String(retry) } : {};
    // Out of capacity (--max-sandboxes) is E2B's concurrency limit: 429, which the SDK retries.
    if (err.code === 'busy') return new E2bHttpError(429, err.message, { 'Retry-After': '5', ...headers });
    return new E2bHttpError(httpStatusOf(err.code), err.message, headers);
  }
  logger.error('unhandled error in an E2B request', {
    request_id: requestId,
    error: messageOf(err),
    stack: err instanceof Error ? err.stack : undefined,
  });
  return new E2bHttpError(500, `internal error; the daemon log has details (request ${requestId})`);
}

export function sendHttpError(res: ServerResponse, e: E2bHttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
  sendJson(res, e.status, { code: e.status, message: e.message.slice(0, MAX_MESSAGE_CHARS) });
}

export function sendJson(
  res: ServerResponse,
  status: number,
  json: unknown,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(json);
  res.statusCode = status;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}
