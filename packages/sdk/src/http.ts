// The SDK's transport: node:http / node:https (no dependency). node:https takes a per-agent
// CA, which Node 20's global fetch cannot; node:http also speaks to a `unix:/path` daemon.
// Every request is bounded: AbortSignal.any([timeout, caller's signal]) destroys the socket,
// which also ends a streaming answer, and the daemon cancels the guest command on close.
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { ForkdApiError } from './errors.js';
import type { ErrorBody } from './types.js';

export interface TransportOptions {
  /** `http://host:port`, `https://host:port` or `unix:/path/to.sock`. */
  url: string;
  token?: string | undefined;
  /** PEM CA certificate(s) to trust for https. */
  ca?: string | Buffer | undefined;
  /** Default bound of each call, ms. */
  timeoutMs: number;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
}

export interface RequestSpec extends CallOptions {
  method: string;
  path: string;
  query?: Record<string, string | undefined>;
  json?: unknown;
  body?: Buffer | Uint8Array;
}

interface Target {
  protocol: 'http:' | 'https:';
  host?: string;
  port?: string;
  socketPath?: string;
}

function parseTarget(raw: string): Target {
  if (raw.startsWith('unix:')) {
    const socketPath = raw.slice('unix:'.length);
    if (!socketPath.startsWith('/'))
      throw new ForkdApiError('invalid_argument', 0, `unix: URL needs an absolute socket path, got ${raw}`);
    return { protocol: 'http:', socketPath };
  }
  let u: URL;
  try {
    u = new URL(raw);
  } catch (cause) {
    throw new ForkdApiError(
      'invalid_argument',
      0,
      `not a daemon URL: ${JSON.stringify(raw)} (http://host:port, https://host:port or unix:/path)`,
      { cause },
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new ForkdApiError('invalid_argument', 0, `daemon URL must be http, https or unix, got ${raw}`);
  return {
    protocol: u.protocol,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port || (u.protocol === 'https:' ? '443' : '80'),
  };
}

export class Transport {
  readonly url: string;
  private readonly target: Target;
  private readonly token: string | undefined;
  private readonly httpsAgent: HttpsAgent | undefined;
  readonly defaultTimeoutMs: number;

  constructor(opts: TransportOptions) {
    this.url = opts.url;
    this.target = parseTarget(opts.url);
    this.token = opts.token;
    this.defaultTimeoutMs = opts.timeoutMs;
    if (this.target.protocol === 'https:')
      this.httpsAgent = new HttpsAgent(opts.ca === undefined ? {} : { ca: opts.ca });
  }

  /** Sends the request; resolves with the response once its headers arrived and it is a 2xx. */
  async send(spec: RequestSpec): Promise<{ res: IncomingMessage; done: () => void }> {
    const timeoutMs = spec.timeoutMs ?? this.defaultTimeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = spec.signal ? AbortSignal.any([timeout, spec.signal]) : timeout;
    const describe = `${spec.method} ${spec.path}`;
    const abortError = (cause?: unknown): ForkdApiError =>
      spec.signal?.aborted
        ? new ForkdApiError('aborted', 0, `${describe} was aborted`, { cause: cause ?? spec.signal.reason })
        : new ForkdApiError(
            'client_timeout',
            0,
            `${describe}: no complete answer from ${this.url} within ${timeoutMs} ms`,
            { cause },
          );
    if (signal.aborted) throw abortError();

    const headers: OutgoingHttpHeaders = { accept: 'application/json' };
    let payload: Buffer | undefined;
    if (spec.json !== undefined) {
      payload = Buffer.from(JSON.stringify(spec.json));
      headers['content-type'] = 'application/json';
    } else if (spec.body !== undefined) {
      payload = Buffer.from(spec.body);
      headers['content-type'] = 'application/octet-stream';
    }
    if (payload) headers['content-length'] = String(payload.length);
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(spec.query ?? {})) if (v !== undefined) qs.set(k, v);
    const path = qs.size > 0 ? `${spec.path}?${qs.toString()}` : spec.path;

    const t = this.target;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const options = {
        method: spec.method,
        path,
        headers,
        signal,
        ...(t.socketPath ? { socketPath: t.socketPath } : { host: t.host, port: t.port }),
      };
      const req =
        t.protocol === 'https:'
          ? httpsRequest({ ...options, agent: this.httpsAgent }, resolve)
          : httpRequest({ ...options, agent: false }, resolve);
      req.on('error', (err) => {
        if (signal.aborted) reject(abortError(err));
        else
          reject(
            new ForkdApiError('unreachable', 0, `cannot reach the forkd daemon at ${this.url}: ${err.message}`, {
              cause: err,
            }),
          );
      });
      req.end(payload);
    });
    const requestId = headerOf(res, 'x-request-id');
    const status = res.statusCode ?? 0;
    // Errors on the response stream after the headers (abort, reset) surface where it is read.
    if (status >= 200 && status < 300) {
      res.on('error', () => undefined);
      return { res, done: () => res.destroy() };
    }
    let text: string;
    try {
      text = (await readAll(res)).toString('utf8');
    } catch (err) {
      throw signal.aborted
        ? abortError(err)
        : new ForkdApiError('protocol_error', status, `${describe}: answer cut off`, { cause: err });
    }
    let body: Partial<ErrorBody> = {};
    try {
      body = JSON.parse(text) as Partial<ErrorBody>;
    } catch {
      /* not JSON: a proxy's page, say */
    }
    const code = typeof body.code === 'string' ? body.code : 'internal';
    const message =
      typeof body.error === 'string' ? body.error : `${describe} answered ${status}: ${text.slice(0, 200)}`;
    throw new ForkdApiError(code, status, message, { requestId });
  }

  /** The bounded call, wrapped so that a cut-off body reports aborted/timeout. */
  async json<T>(spec: RequestSpec): Promise<T> {
    const buf = await this.buffer(spec);
    if (buf.length === 0) return undefined as T;
    try {
      return JSON.parse(buf.toString('utf8')) as T;
    } catch (cause) {
      throw new ForkdApiError('protocol_error', 0, `${spec.method} ${spec.path}: the answer is not JSON`, { cause });
    }
  }

  async buffer(spec: RequestSpec): Promise<Buffer> {
    const { res } = await this.send(spec);
    try {
      return await readAll(res);
    } catch (cause) {
      if (spec.signal?.aborted)
        throw new ForkdApiError('aborted', 0, `${spec.method} ${spec.path} was aborted`, { cause });
      throw new ForkdApiError(
        'client_timeout',
        0,
        `${spec.method} ${spec.path}: the answer from ${this.url} was cut off or timed out`,
        { cause },
      );
    }
  }
}

function headerOf(res: IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function readAll(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('response aborted')));
    res.on('close', () => {
      if (!res.complete) reject(new Error('response closed before its end'));
    });
  });
}

/** Yields each NDJSON line of a streaming answer as it arrives. */
export async function* ndjsonLines(res: IncomingMessage): AsyncGenerator<unknown> {
  let pending = '';
  res.setEncoding('utf8');
  for await (const chunk of res as AsyncIterable<string>) {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line) yield JSON.parse(line) as unknown;
    }
  }
  if (pending.trim()) yield JSON.parse(pending) as unknown;
}
