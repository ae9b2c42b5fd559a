// The listener: HTTP or HTTPS on TCP, or a unix socket (mode 0600: the file system is then the
// access control). Resolves with the address actually bound (port 0 picks a free port).
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { chmod, lstat, unlink } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { ERROR_CODES, ForkdError, type ErrorCode } from '../lib/errors.js';
import { bindText, type Bind } from './bind.js';
import { tlsOptions } from './tls.js';

export interface Listening {
  server: Server;
  /** `127.0.0.1:41234`, `[::1]:8889` or `unix:/run/forkd/api.sock`. */
  address: string;
  url: string;
}

export interface HttpLimits {
  /** All request headers must arrive within this (slow-header clients are cut off: 408). */
  headersTimeoutMs: number;
  /** The whole request, body included (slow-body clients are cut off: 408). */
  requestTimeoutMs: number;
}

/** Node's default header limit (16 KiB in all) stays; over it: 431. */
const MAX_HEADERS_COUNT = 100;

export async function listen(
  bind: Bind,
  tls: { cert: Buffer; key: Buffer } | undefined,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  limits: HttpLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 300_000 },
): Promise<Listening> {
  const options = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // How often Node looks for connections past those deadlines (default 30 s: a deadline
    // could then be overrun by that much).
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    keepAliveTimeout: 5_000,
  };
  const server: Server = tls
    ? createHttpsServer({ ...tlsOptions(tls), ...options }, handler)
    : createHttpServer(options, handler);
  server.maxHeadersCount = MAX_HEADERS_COUNT;
  server.on('clientError', answerClientError);
  // An Expect other than 100-continue: served as if absent (RFC 9110 allows it), instead of
  // Node's bare 417 without the API's error body.
  server.on('checkExpectation', handler);
  if (bind.kind === 'unix') await removeStaleSocket(bind.path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (bind.kind === 'unix') server.listen(bind.path, done);
    else server.listen(bind.port, bind.host, done);
  });
  const scheme = tls ? 'https' : 'http';
  if (bind.kind === 'unix') {
    await chmod(bind.path, 0o600);
    return { server, address: bindText(bind), url: `${scheme}+unix://${encodeURIComponent(bind.path)}` };
  }
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new ForkdError('internal', 'listener has no TCP address');
  const address = bindText({ kind: 'tcp', host: addr.address, port: addr.port });
  return { server, address, url: `${scheme}://${address}` };
}

async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined); // nothing there (or unreadable: listen() then says why)
  if (!st) return;
  if (!st.isSocket())
    throw new ForkdError(
      'conflict',
      `--bind unix:${path}: the path exists and is not a socket; remove it or pick another`,
    );
  await unlink(path);
}

/**
 * Requests Node's parser refuses before any handler runs (malformed, headers too large,
 * headers or body too slow) get the API's `{"error","code"}` body too, then the connection
 * closes. A socket already answering a request is only cut.
 */
function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  // The parser reports its error again for every later chunk: answered once, then drained.
  if (answered.has(socket)) return;
  const pending = (socket as { _httpMessage?: ServerResponse })._httpMessage;
  if (!socket.writable || err.code === 'ECONNRESET' || pending?.headersSent) {
    socket.destroy();
    return;
  }
  let code: ErrorCode = 'invalid_argument';
  let message = `malformed HTTP request (${err.code ?? 'parse error'})`;
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    code = 'headers_too_large';
    message = 'request line and headers over the 16 KiB limit';
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT') {
    code = 'request_timeout';
    message = 'the request (headers, then body) did not arrive within its deadline';
  }
  answered.add(socket);
  const status = ERROR_CODES[code];
  // The audit record of a request cut mid-body then shows this status.
  if (pending) pending.statusCode = status;
  const body = JSON.stringify({ error: message, code });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n${body}`,
  );
  // Read and drop what the client is still sending (bounded), so closing does not reset the
  // connection and throw away the answer before the client has read it.
  let dropped = 0;
  socket.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > CLIENT_ERROR_DRAIN_BYTES) socket.destroy();
  });
  socket.resume();
  setTimeout(() => socket.destroy(), CLIENT_ERROR_DRAIN_MS).unref();
}

const answered = new WeakSet<Duplex>();
const CLIENT_ERROR_DRAIN_BYTES = 8 * 1024 * 1024;
const CLIENT_ERROR_DRAIN_MS = 2000;

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};
