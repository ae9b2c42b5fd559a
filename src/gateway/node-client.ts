// The gateway's HTTP(S) client for node daemons: every request carries the node bearer token;
// https verifies the node's certificate against --node-ca and --node-servername (nodes are
// reached by the IPs DNS gave, so the name to check is given separately). Keep-alive agents,
// one per scheme. Bodies come back as streams, so a proxied exec stream or file flows through.
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { ERROR_CODES, ForkdError, messageOf, type ErrorCode } from '../lib/errors.js';

export interface NodeClientOptions {
  token: string | undefined;
  /** PEM CA certificate(s) of the nodes' TLS certificates. */
  ca?: Buffer | undefined;
  /** Name their certificates are checked against (default: the URL's host). */
  servername?: string | undefined;
  /** Bound of establishing a connection. */
  connectTimeoutMs?: number;
}

export interface NodeResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
}

export interface NodeRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** JSON value, bytes, or a stream piped as the body. */
  json?: unknown;
  body?: Buffer | Readable;
  /** Whole-request deadline (health checks); proxied calls have none but the caller's signal. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class NodeClient {
  readonly #http = new http.Agent({ keepAlive: true, maxSockets: 64 });
  readonly #https: https.Agent;

  constructor(private readonly opts: NodeClientOptions) {
    this.#https = new https.Agent({
      keepAlive: true,
      maxSockets: 64,
      ...(opts.ca ? { ca: opts.ca } : {}),
      ...(opts.servername ? { servername: opts.servername } : {}),
    });
  }

  request(base: string, req: NodeRequest): Promise<NodeResponse> {
    const url = new URL(req.path, base);
    const headers: Record<string, string> = { ...req.headers };
    let payload: Buffer | Readable | undefined;
    if (req.json !== undefined) {
      payload = Buffer.from(JSON.stringify(req.json));
      headers['content-type'] = 'application/json';
    } else if (req.body !== undefined) payload = req.body;
    if (Buffer.isBuffer(payload)) headers['content-length'] = String(payload.length);
    if (this.opts.token !== undefined) headers.authorization = `Bearer ${this.opts.token}`;
    const tls = url.protocol === 'https:';
    const signals = [req.signal, req.timeoutMs === undefined ? undefined : AbortSignal.timeout(req.timeoutMs)].filter(
      (s): s is AbortSignal => s !== undefined,
    );
    const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
    return new Promise<NodeResponse>((resolve, reject) => {
      const r = (tls ? https : http).request(
        {
          protocol: url.protocol,
          hostname: url.hostname.replace(/^\[|\]$/g, ''),
          port: url.port,
          method: req.method,
          path: `${url.pathname}${url.search}`,
          headers,
          agent: tls ? this.#https : this.#http,
          ...(tls && this.opts.servername ? { servername: this.opts.servername } : {}),
          ...(signal ? { signal } : {}),
        },
        (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }),
      );
      const connectTimer = setTimeout(
        () => r.destroy(new Error(`no connection within ${this.opts.connectTimeoutMs ?? 5000} ms`)),
        this.opts.connectTimeoutMs ?? 5000,
      );
      r.once('socket', (s) => {
        if (!s.connecting) clearTimeout(connectTimer);
        else s.once(tls ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
      });
      r.once('response', () => clearTimeout(connectTimer));
      r.once('error', (err) => {
        clearTimeout(connectTimer);
        reject(
          new ForkdError(
            'unavailable',
            `node ${base} did not answer ${req.method} ${url.pathname}: ${messageOf(err)}`,
            {
              cause: err,
            },
          ),
        );
      });
      if (payload === undefined || Buffer.isBuffer(payload)) r.end(payload);
      else {
        payload.once('error', (err) => r.destroy(err));
        payload.pipe(r);
      }
    });
  }

  /** A JSON answer (2xx) or the node's error as a ForkdError with its code. */
  async json<T>(base: string, req: NodeRequest, limit = 64 << 20): Promise<{ status: number; json: T }> {
    const res = await this.request(base, req);
    const text = await readText(res.body, limit);
    let value: unknown;
    try {
      value = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new ForkdError('unavailable', `node ${base} answered ${req.method} ${req.path} with a non-JSON body`);
    }
    if (res.status >= 400) throw nodeError(base, res.status, value);
    return { status: res.status, json: value as T };
  }

  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }
}

export async function readText(body: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    const b = c as Buffer;
    size += b.length;
    if (size > limit) {
      body.destroy();
      throw new ForkdError('unavailable', `a node's answer is over ${limit} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A node's error body as a ForkdError: its code and message (a 401 is the gateway's token, not the caller's). */
export function nodeError(base: string, status: number, body: unknown): ForkdError {
  const b = (body ?? {}) as { error?: unknown; code?: unknown };
  if (status === 401)
    return new ForkdError(
      'unavailable',
      `node ${base} refused the gateway's node token; check --node-token-file (it must be the nodes' --token-file)`,
    );
  const code = typeof b.code === 'string' && isCode(b.code) ? b.code : status >= 500 ? 'unavailable' : 'internal';
  const message = typeof b.error === 'string' ? b.error : `node ${base} answered ${status}`;
  return new ForkdError(code, message, { details: { node: base } });
}

function isCode(c: string): c is ErrorCode {
  return Object.hasOwn(ERROR_CODES, c);
}
