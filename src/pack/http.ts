// Streamed HTTP(S) for push and pull with Node's own http/https: a PUT of a file with its
// Content-Length (what presigned object-store URLs expect) and a GET into a file, hashed as it
// arrives and bounded in size. Every socket wait is bounded by an idle timeout. URLs are shown
// without their query string: a presigned URL's signature is a credential.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errnoOf, ForkdError, messageOf } from '../lib/errors.js';

export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const MAX_REDIRECTS = 5;

export interface TransferOptions {
  idleTimeoutMs?: number;
  onProgress?: (doneBytes: number, totalBytes: number | undefined) => void;
}

/** http: or https: only; anything else is a usage error. */
export function parseHttpUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ForkdError('invalid_argument', `${JSON.stringify(redactRaw(raw))} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ForkdError('invalid_argument', `URL scheme ${url.protocol} is not supported; use http: or https:`);
  return url;
}

/** The URL as it may be shown or logged: no query (signatures), no user info. */
export function redactUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}${url.search ? '?…' : ''}`;
}

function redactRaw(raw: string): string {
  return raw.replace(/[?#].*$/s, '?…').slice(0, 200);
}

/** PUT a file, streamed, with its Content-Length. Resolves on a 2xx answer. */
export async function putFile(url: URL, file: string, opts: TransferOptions = {}): Promise<{ status: number }> {
  const size = (await stat(file)).size;
  const req = start(url, 'PUT', opts, {
    'content-length': String(size),
    'content-type': 'application/octet-stream',
  });
  const answered = response(req);
  answered.catch(() => undefined); // marks it handled only: it is awaited below on every path
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), counter(size, opts.onProgress), req).catch(
    async (err: unknown) => {
      // A server may answer (413, 403) and close before taking the whole body: report its answer.
      const res = await answered.catch(() => undefined);
      if (res) await assertOk(res, 'PUT', url);
      throw transportError('PUT', url, err);
    },
  );
  const res = await answered.catch((err: unknown) => {
    throw transportError('PUT', url, err);
  });
  await assertOk(res, 'PUT', url);
  res.resume();
  return { status: res.statusCode ?? 0 };
}

/** GET into `dest` (created exclusively), hashed while streaming; at most `maxBytes`. */
export async function getToFile(
  url: URL,
  dest: string,
  opts: TransferOptions & { maxBytes: number },
): Promise<{ bytes: number; sha256: string; finalUrl: URL }> {
  let current = url;
  for (let hop = 0; ; hop++) {
    const req = start(current, 'GET', opts, {});
    req.end();
    const res = await response(req).catch((err: unknown) => {
      throw transportError('GET', current, err);
    });
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location !== undefined && status !== 304) {
      res.resume();
      if (hop >= MAX_REDIRECTS)
        throw new ForkdError('unavailable', `GET ${redactUrl(url)}: more than ${MAX_REDIRECTS} redirects`);
      current = parseHttpUrl(new URL(res.headers.location, current).toString());
      continue;
    }
    await assertOk(res, 'GET', current);
    const declared = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
    if (declared !== undefined && declared > opts.maxBytes) {
      res.destroy();
      throw new ForkdError(
        'payload_too_large',
        `GET ${redactUrl(current)}: ${declared} bytes, beyond the limit of ${opts.maxBytes}`,
      );
    }
    const hash = createHash('sha256');
    let bytes = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        bytes += chunk.length;
        if (bytes > opts.maxBytes) {
          cb(new ForkdError('payload_too_large', `GET ${redactUrl(current)}: more than ${opts.maxBytes} bytes`));
          return;
        }
        hash.update(chunk);
        opts.onProgress?.(bytes, declared);
        cb(null, chunk);
      },
    });
    await pipeline(res, meter, createWriteStream(dest, { flags: 'wx', mode: 0o600 })).catch((err: unknown) => {
      throw err instanceof ForkdError ? err : transportError('GET', current, err);
    });
    if (declared !== undefined && bytes !== declared)
      throw new ForkdError('unavailable', `GET ${redactUrl(current)}: got ${bytes} of ${declared} bytes`);
    return { bytes, sha256: hash.digest('hex'), finalUrl: current };
  }
}

function start(url: URL, method: string, opts: TransferOptions, headers: Record<string, string>): http.ClientRequest {
  const idle = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const req = (url.protocol === 'https:' ? https : http).request(url, { method, headers });
  req.setTimeout(idle, () => {
    req.destroy(new ForkdError('timeout', `${method} ${redactUrl(url)}: no progress for ${idle / 1000} s`));
  });
  return req;
}

function response(req: http.ClientRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
}

async function assertOk(res: IncomingMessage, method: string, url: URL): Promise<void> {
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return;
  let body = '';
  try {
    for await (const chunk of res) {
      body += (chunk as Buffer).toString('utf8');
      if (body.length > 500) break;
    }
  } catch {
    /* the status says enough */
  }
  res.destroy();
  const snippet = body.replace(/\s+/g, ' ').trim().slice(0, 200);
  const code =
    status === 404 ? 'not_found' : status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : 'unavailable';
  throw new ForkdError(
    code,
    `${method} ${redactUrl(url)} answered ${status} ${res.statusMessage ?? ''}${snippet ? `: ${snippet}` : ''}`.trim(),
    { details: { status } },
  );
}

function transportError(method: string, url: URL, err: unknown): ForkdError {
  if (err instanceof ForkdError) return err;
  if (errnoOf(err) === 'ENOSPC' || errnoOf(err) === 'EDQUOT')
    return new ForkdError('insufficient_storage', `${method} ${redactUrl(url)}: no space left for the download`, {
      cause: err,
    });
  return new ForkdError('unavailable', `${method} ${redactUrl(url)} failed: ${messageOf(err)}`, { cause: err });
}

function counter(total: number, onProgress: TransferOptions['onProgress']): Transform {
  let done = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      done += chunk.length;
      onProgress?.(done, total);
      cb(null, chunk);
    },
  });
}
