// The request pipeline, outermost first: audit + metrics (on every response, whatever
// happened) -> auth -> route -> validate path, query and body against the OpenAPI document ->
// handler. Handlers only see validated input; every error leaves as {"error","code"}.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ForkdError, httpStatusOf, messageOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { AuditLog } from './audit.js';
import { AuthThrottle, BearerAuth, type AuthOutcome } from './auth.js';
import type { Metrics } from './metrics.js';
import { Router } from './router.js';
import { describeErrors, STREAM_TYPE, type Operation } from './validation.js';
import { bodyTooLarge, readBoundedBody } from './bounded-body.js';

/** JSON request bodies (exec with stdin and env, eval code) stay well under this. */
export const JSON_BODY_LIMIT = 2 * 1024 * 1024;
/** File uploads through PUT .../files are buffered whole: bounded. */
export const FILE_BODY_LIMIT = 64 * 1024 * 1024;
const MAX_ERROR_CHARS = 4000;
/** After an early error, how much of an unwanted body is read and dropped before hanging up. */
const DRAIN_BYTES = 8 * 1024 * 1024;
const DRAIN_MS = 5000;

export interface Call {
  op: Operation;
  params: Record<string, string>;
  query: Record<string, string>;
  /** Parsed JSON (defaults filled in) for JSON routes; bytes for binary routes; the unread request for streams. */
  body: unknown;
  requestId: string;
  res: ServerResponse;
  /** Aborted when the client goes away before the response is complete. */
  signal: AbortSignal;
}

export type Reply =
  | { status: number; json: unknown; headers?: Record<string, string> }
  | { status: number; text: string; contentType: string }
  | { status: number; bytes: Buffer }
  | { status: 204 }
  /** The handler wrote the response itself (streaming). */
  | { streamed: true };

export type Handler = (call: Call) => Promise<Reply>;

export interface PipelineDeps {
  operations: Operation[];
  handlers: Record<string, Handler>;
  auth: BearerAuth;
  audit: AuditLog;
  metrics: Metrics;
  logger: Logger;
  /** Wrong-token throttle (default: 100 failures, then 1 a second, per client address). */
  throttle?: AuthThrottle;
}

export function createPipeline(deps: PipelineDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const router = new Router(deps.operations);
  const throttle = deps.throttle ?? new AuthThrottle();
  for (const op of deps.operations)
    if (!deps.handlers[op.operationId]) throw new Error(`no handler for operation ${op.operationId}`);
  return (req, res) => {
    const t0 = performance.now();
    const requestId = randomBytes(8).toString('hex');
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const method = req.method ?? 'GET';
    const remote = remoteOf(req); // read now: the socket forgets its peer once closed
    let auth: AuthOutcome = 'disabled';
    let route = 'unmatched';
    res.setHeader('X-Request-Id', requestId);
    res.once('close', () => {
      const status = res.statusCode;
      deps.audit.request({
        method,
        path: path.slice(0, 2048),
        status,
        latency_ms: Math.round((performance.now() - t0) * 1000) / 1000,
        remote,
        user_agent: String(req.headers['user-agent'] ?? '').slice(0, 512),
        request_id: requestId,
        auth,
        route,
        ...(res.writableFinished ? {} : { aborted: true }),
      });
      deps.metrics.httpRequests.inc({ route, method, status: String(status) });
    });
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort(new ForkdError('unavailable', 'the client went away'));
    });

    const run = async (): Promise<void> => {
      auth = BearerAuth.exempt(method, path) ? 'exempt' : deps.auth.check(req.headers.authorization);
      if (auth === 'invalid') {
        const retryAfterSecs = throttle.fail(clientOf(req));
        if (retryAfterSecs !== undefined) {
          deps.metrics.authFailures.inc({ reason: 'throttled' });
          throw new ForkdError(
            'rate_limited',
            `too many requests with a wrong bearer token from this address; retry after ${retryAfterSecs} s with the right one`,
            { details: { retryAfterSecs } },
          );
        }
      }
      if (auth === 'missing' || auth === 'invalid') {
        deps.metrics.authFailures.inc({ reason: auth });
        res.setHeader(
          'WWW-Authenticate',
          auth === 'missing' ? 'Bearer realm="forkd"' : 'Bearer realm="forkd", error="invalid_token"',
        );
        throw new ForkdError(
          'unauthorized',
          auth === 'missing' ? 'missing bearer token: send Authorization: Bearer <token>' : 'invalid bearer token',
        );
      }
      const match = router.match(method, path);
      if (match.kind === 'not_found')
        throw new ForkdError('not_found', `no route ${method} ${path.slice(0, 200)}; see GET /v1/openapi.json`);
      if (match.kind === 'method_not_allowed') {
        res.setHeader('Allow', match.allow.join(', '));
        throw new ForkdError('method_not_allowed', `${method} is not allowed here; allowed: ${match.allow.join(', ')}`);
      }
      const { op, params } = match;
      route = op.template;
      // The audit log fails closed: nothing that changes state runs while it cannot be written.
      if (op.method !== 'get' && !deps.audit.available) throw deps.audit.unavailableError();
      for (const p of op.pathParams) {
        if (!p.validate(params[p.name])) {
          const code = p.name === 'tag' ? 'invalid_tag' : p.name === 'id' ? 'invalid_id' : 'invalid_argument';
          throw new ForkdError(
            code,
            `${describeErrors(`path parameter ${p.name}`, p.validate.errors)}: ${JSON.stringify(params[p.name]!.slice(0, 80))}`,
          );
        }
      }
      const query = parseQuery(rawUrl.slice(q < 0 ? rawUrl.length : q + 1), op);
      const body = await readBody(req, op);
      const reply = await deps.handlers[op.operationId]!({
        op,
        params,
        query,
        body,
        requestId,
        res,
        signal: abort.signal,
      });
      send(res, reply);
    };
    run().catch((err: unknown) => sendError(res, err, requestId, deps.logger));
  };
}

function parseQuery(text: string, op: Operation): Record<string, string> {
  const search = new URLSearchParams(text);
  const out: Record<string, string> = {};
  for (const key of new Set(search.keys())) {
    const spec = op.query.find((p) => p.name === key);
    if (!spec) throw new ForkdError('invalid_argument', `unknown query parameter ${JSON.stringify(key.slice(0, 80))}`);
    const values = search.getAll(key);
    if (values.length > 1)
      throw new ForkdError('invalid_argument', `query parameter ${key} given ${values.length} times`);
    const value = values[0]!;
    if (!spec.validate(value)) {
      const code = key === 'snapshot_tag' ? 'invalid_tag' : 'invalid_argument';
      throw new ForkdError(
        code,
        `${describeErrors(`query parameter ${key}`, spec.validate.errors)}: ${JSON.stringify(String(value).slice(0, 80))}`,
      );
    }
    out[key] = value;
  }
  for (const p of op.query)
    if (p.required && out[p.name] === undefined)
      throw new ForkdError('invalid_argument', `query parameter ${p.name} is required`);
  return out;
}

async function readBody(req: IncomingMessage, op: Operation): Promise<unknown> {
  if (op.bodyKind === 'stream') {
    // The handler reads (and bounds) it; only the content type is checked here.
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (type !== STREAM_TYPE)
      throw new ForkdError(
        'unsupported_media_type',
        `send the body as Content-Type: ${STREAM_TYPE} (got ${JSON.stringify(type.slice(0, 80))})`,
      );
    return req;
  }
  const limit = op.bodyKind === 'binary' ? FILE_BODY_LIMIT : JSON_BODY_LIMIT;
  const declared = Number(req.headers['content-length'] ?? NaN);
  const hasBody = declared > 0 || req.headers['transfer-encoding'] !== undefined;
  if (declared > limit) throw bodyTooLarge(limit);
  if (op.bodyKind === 'json' && hasBody) {
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (type !== 'application/json')
      throw new ForkdError(
        'unsupported_media_type',
        `send the body as Content-Type: application/json (got ${JSON.stringify(type.slice(0, 80))})`,
      );
  }
  const bytes = await readBoundedBody(req, limit, 'leave'); // over the limit: sendError drains it
  const size = bytes.length;
  if (op.bodyKind === 'binary') return bytes;
  if (op.bodyKind === 'none') {
    if (size > 0)
      throw new ForkdError('invalid_argument', `${op.method.toUpperCase()} ${op.template} takes no request body`);
    return undefined;
  }
  if (size === 0) {
    if (op.bodyRequired) throw new ForkdError('invalid_argument', 'a JSON request body is required');
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ForkdError('invalid_argument', `request body is not valid JSON: ${messageOf(err)}`);
  }
  if (!op.body!(value)) {
    const first = op.body!.errors?.[0];
    const tagField = first && /^\/(tag|snapshot_tag|image)$/.test(first.instancePath);
    throw new ForkdError(tagField ? 'invalid_tag' : 'invalid_argument', describeErrors('body', op.body!.errors));
  }
  return value;
}

function send(res: ServerResponse, reply: Reply): void {
  if ('streamed' in reply) return;
  res.statusCode = reply.status;
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  if ('json' in reply) {
    for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(reply.json));
  } else if ('text' in reply) {
    res.setHeader('Content-Type', reply.contentType);
    res.end(reply.text);
  } else if ('bytes' in reply) {
    res.setHeader('Content-Type', 'application/octet-stream');
    res.end(reply.bytes);
  } else {
    res.end();
  }
}

export function errorBody(
  err: unknown,
  requestId: string,
  logger: Logger,
): { status: number; body: { error: string; code: string; request_id: string } } {
  if (err instanceof ForkdError) {
    return {
      status: httpStatusOf(err.code),
      body: { error: err.message.slice(0, MAX_ERROR_CHARS), code: err.code, request_id: requestId },
    };
  }
  logger.error('unhandled error in a request', {
    request_id: requestId,
    error: messageOf(err),
    stack: err instanceof Error ? err.stack : undefined,
  });
  return {
    status: 500,
    body: {
      error: `internal error; the daemon log has details (request ${requestId})`,
      code: 'internal',
      request_id: requestId,
    },
  };
}

function sendError(res: ServerResponse, err: unknown, requestId: string, logger: Logger): void {
  const { status, body } = errorBody(err, requestId, logger);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // An unread (too large or refused) body: answer, then read and drop what the client is still
  // sending (so it sees the answer instead of a reset), bounded in bytes and time, and close.
  const req = res.req;
  if (!req.readableEnded) {
    res.setHeader('Connection', 'close');
    // Node destroys a `Connection: close` socket as soon as the answer is written; with body
    // bytes still arriving that is a reset, and the client can lose the answer before reading
    // it (the fuzzer saw it). So the socket is only ended then (FIN), the rest of the body is
    // read and dropped, and the socket goes once the client closes, past DRAIN_BYTES or DRAIN_MS.
    const socket = req.socket;
    socket.destroySoon = () => socket.end();
    let dropped = 0;
    const timer = setTimeout(() => socket.destroy(), DRAIN_MS);
    timer.unref();
    req.on('data', (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > DRAIN_BYTES) socket.destroy();
    });
    socket.once('close', () => clearTimeout(timer));
    req.resume();
  }
  // 503s that ask to come back later say when (BRANCH over its concurrency cap).
  const retryAfter = err instanceof ForkdError ? err.details?.retryAfterSecs : undefined;
  send(res, {
    status,
    json: body,
    ...(typeof retryAfter === 'number' ? { headers: { 'Retry-After': String(retryAfter) } } : {}),
  });
}

/** The throttle's key: the peer address without its port (one key for a unix socket). */
function clientOf(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unix';
}

function remoteOf(req: IncomingMessage): string {
  const s = req.socket;
  if (!s.remoteAddress) return 'unix';
  return s.remoteFamily === 'IPv6' ? `[${s.remoteAddress}]:${s.remotePort}` : `${s.remoteAddress}:${s.remotePort}`;
}
