// The Connect protocol (connectrpc.com/docs/protocol), JSON codec only, as the `e2b` SDK speaks
// it to a sandbox's envd: unary calls are a POST of application/json answered with JSON (an
// error is a non-200 status and {code, message}); server-streaming calls send one enveloped
// message as application/connect+json and get enveloped messages back, then an end-of-stream
// envelope carrying the error if any. An envelope is 1 flags byte, a 4-byte big-endian length
// and the JSON. Client streaming is not offered (the SDK never calls it): `unimplemented`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ForkdError, messageOf } from '../../lib/errors.js';
import { readBounded } from './body.js';

export type ConnectCode =
  | 'canceled'
  | 'unknown'
  | 'invalid_argument'
  | 'deadline_exceeded'
  | 'not_found'
  | 'already_exists'
  | 'permission_denied'
  | 'resource_exhausted'
  | 'failed_precondition'
  | 'aborted'
  | 'out_of_range'
  | 'unimplemented'
  | 'internal'
  | 'unavailable'
  | 'data_loss'
  | 'unauthenticated';

/** HTTP status of a unary error, by Connect code (the protocol's table). */
const HTTP_STATUS: Record<ConnectCode, number> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
};

export class RpcError extends Error {
  constructor(
    readonly code: ConnectCode,
    message: string,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

/** JSON request bodies of the in-sandbox API (SendInput carries base64 input) stay under this. */
const RPC_BODY_LIMIT = 4 * 1024 * 1024;
const FLAG_END_STREAM = 0x02;
const FLAG_COMPRESSED = 0x01;
const MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000;

export type RpcKind = 'unary' | 'server_stream';

export interface RpcCall {
  message: Record<string, unknown>;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** The client's deadline (Connect-Timeout-Ms), if it sent one. */
  timeoutMs: number | undefined;
  headers: IncomingMessage['headers'];
}

/** Server-side stream: `send` waits while the client is slow (bounded memory). */
export type StreamSender = (message: unknown) => Promise<void>;

/** Reads the request message of a unary or server-streaming call (the content type decides which framing). */
export async function readRpcRequest(req: IncomingMessage, kind: RpcKind): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim()
    .toLowerCase();
  const expected = kind === 'unary' ? 'application/json' : 'application/connect+json';
  if (type !== expected) {
    throw new RpcError(
      type.includes('proto') ? 'unimplemented' : 'invalid_argument',
      `this server speaks the Connect protocol's JSON codec only: send ${expected} (got ${JSON.stringify(type.slice(0, 80))})`,
    );
  }
  const bytes = await readBounded(req, RPC_BODY_LIMIT).catch((err: unknown) => {
    throw new RpcError('resource_exhausted', messageOf(err));
  });
  let json = bytes;
  if (kind === 'server_stream') {
    if (bytes.length < 5) throw new RpcError('invalid_argument', 'a streaming request needs one enveloped message');
    const flags = bytes[0]!;
    const len = bytes.readUInt32BE(1);
    if (flags & FLAG_COMPRESSED) throw new RpcError('unimplemented', 'compressed messages are not supported');
    if (len !== bytes.length - 5) throw new RpcError('invalid_argument', 'the request envelope length is wrong');
    json = bytes.subarray(5);
  }
  if (json.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new RpcError('invalid_argument', `the request message is not JSON: ${messageOf(err)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new RpcError('invalid_argument', 'the request message must be a JSON object');
  return value as Record<string, unknown>;
}

/** Connect-Timeout-Ms: up to 10 digits of milliseconds. */
export function timeoutOf(req: IncomingMessage): number | undefined {
  const raw = req.headers['connect-timeout-ms'];
  if (typeof raw !== 'string') return undefined;
  if (!/^\d{1,10}$/.test(raw)) throw new RpcError('invalid_argument', 'Connect-Timeout-Ms must be up to 10 digits');
  return Math.min(Number(raw), MAX_TIMEOUT_MS);
}

export function sendUnary(res: ServerResponse, message: unknown): void {
  const body = JSON.stringify(message ?? {});
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

export function sendUnaryError(res: ServerResponse, err: RpcError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ code: err.code, message: err.message });
  res.statusCode = HTTP_STATUS[err.code];
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

function envelope(flags: number, json: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(json));
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Starts a streaming response; returns the sender and the function that ends it (with an error or not). */
export function startStream(res: ServerResponse): { send: StreamSender; end: (err?: RpcError) => void } {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/connect+json');
  res.setHeader('Cache-Control', 'no-store');
  res.flushHeaders();
  const send: StreamSender = async (message) => {
    if (res.destroyed || res.writableEnded) throw new RpcError('canceled', 'the client went away');
    if (!res.write(envelope(0, message))) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          res.off('drain', done).off('close', done);
          resolve();
        };
        res.on('drain', done).on('close', done);
      });
    }
  };
  const end = (err?: RpcError): void => {
    if (res.destroyed || res.writableEnded) return;
    res.end(envelope(FLAG_END_STREAM, err ? { error: { code: err.code, message: err.message } } : {}));
  };
  return { send, end };
}

/**
 * A forkd error (or anything thrown) as the Connect error the SDK maps to its own classes:
 * not_found -> NotFoundError / FileNotFoundError, already_exists (makeDir's "false"),
 * resource_exhausted -> RateLimitError, deadline_exceeded -> TimeoutError, unavailable (a
 * sandbox that is gone) -> its sandbox-timeout error. Unknown errors keep no detail: the
 * caller logged them.
 */
export function rpcErrorOf(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  if (!(err instanceof ForkdError)) return new RpcError('internal', 'internal error; the daemon log has details');
  const code: ConnectCode =
    (
      {
        invalid_argument: 'invalid_argument',
        invalid_tag: 'invalid_argument',
        invalid_id: 'invalid_argument',
        unauthorized: 'unauthenticated',
        forbidden: 'permission_denied',
        not_found: 'not_found',
        already_exists: 'already_exists',
        conflict: 'failed_precondition',
        invalid_state: 'failed_precondition',
        payload_too_large: 'resource_exhausted',
        rate_limited: 'resource_exhausted',
        busy: 'resource_exhausted',
        unavailable: 'unavailable',
        timeout: 'deadline_exceeded',
        request_timeout: 'deadline_exceeded',
        insufficient_storage: 'resource_exhausted',
      } as Partial<Record<ForkdError['code'], ConnectCode>>
    )[err.code] ?? (err.code === 'agent_error' ? 'unknown' : 'internal');
  return new RpcError(code, err.message);
}
