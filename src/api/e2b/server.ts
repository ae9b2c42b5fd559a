// The E2B-compatible listener's request handler (forkd-controller serve --e2b-bind): one
// origin for both of the SDK's endpoints (E2B_API_URL and E2B_SANDBOX_URL point at it).
//   control API  /sandboxes..., /v2/sandboxes..., /snapshots, /templates/...   auth: X-API-KEY = the forkd token
//   in-sandbox   /process.Process/*, /filesystem.Filesystem/*, /files, /health
//                the sandbox is named by the E2b-Sandbox-Id header; auth: X-Access-Token = its access token
// Every request is audited like the forkd API's (never a token, never a body).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { LiveSandbox } from '../../core/controller/live.js';
import { ForkdError, isForkdError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { AuditLog } from '../audit.js';
import { AuthThrottle, BearerAuth } from '../auth.js';
import type { Metrics } from '../metrics.js';
import { JSON_BODY_LIMIT } from '../http.js';
import { readJsonObject } from './body.js';
import {
  readRpcRequest,
  rpcErrorOf,
  RpcError,
  sendUnary,
  sendUnaryError,
  startStream,
  timeoutOf,
  type RpcCall,
} from './connect-protocol.js';
import { control, type ControlCore } from './control-routes.js';
import { E2bHttpError, httpErrorOf, sendHttpError, sendJson } from './errors.js';
import { downloadFile, uploadFiles } from './files-routes.js';
import { FILESYSTEM_UNARY } from './filesystem-service.js';
import { PROCESS_STREAMS, PROCESS_UNARY } from './process-service.js';

/** The port the SDK addresses envd on; other ports would be services in the sandbox, which forkd does not route. */
const ENVD_PORT = '49983';

export interface E2bDeps {
  core: ControlCore;
  /** The forkd token: the E2B API key. Undefined: auth off (loopback only, as for the forkd API). */
  token: string | undefined;
  audit: AuditLog;
  metrics: Metrics;
  logger: Logger;
  throttle?: AuthThrottle;
}

export function createE2bHandler(deps: E2bDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const auth = new BearerAuth(deps.token);
  const throttle = deps.throttle ?? new AuthThrottle();
  return (req, res) => {
    const t0 = performance.now();
    const requestId = randomBytes(8).toString('hex');
    const url = new URL(req.url ?? '/', 'http://e2b.invalid');
    const method = req.method ?? 'GET';
    const remote = req.socket.remoteAddress ?? 'unix';
    let route = 'e2b:unmatched';
    let outcome = 'disabled';
    res.setHeader('X-Request-Id', requestId);
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort(new ForkdError('unavailable', 'the client went away'));
      deps.audit.request({
        method,
        path: url.pathname.slice(0, 2048),
        status: res.statusCode,
        latency_ms: Math.round((performance.now() - t0) * 1000) / 1000,
        remote,
        user_agent: String(req.headers['user-agent'] ?? '').slice(0, 512),
        request_id: requestId,
        auth: outcome,
        route,
        ...(res.writableFinished ? {} : { aborted: true }),
      });
      deps.metrics.httpRequests.inc({ route, method, status: String(res.statusCode) });
    });
    const path = url.pathname;
    const rpc = /^\/(process\.Process|filesystem\.Filesystem)\/([A-Za-z]+)$/.exec(path);
    const inSandbox = rpc !== null || path === '/files' || path === '/health';
    const log = deps.logger.child({ request_id: requestId });
    const run = async (): Promise<void> => {
      if (method !== 'GET' && !deps.audit.available) throw deps.audit.unavailableError();
      if (!inSandbox) {
        route = 'e2b:control';
        outcome = checkApiKey(auth, throttle, req);
        const reply = await control(deps.core, {
          method,
          path,
          query: url.searchParams,
          body: () => readJsonObject(req, JSON_BODY_LIMIT),
          requestId,
        });
        if (reply.status === 204) {
          res.statusCode = 204;
          res.end();
        } else sendJson(res, reply.status, reply.json, reply.headers);
        return;
      }
      // Only known calls get a label of their own: metric labels stay a bounded set.
      route = rpc ? (knownRpc(rpc[1]!, rpc[2]!) ? `e2b:${rpc[1]}/${rpc[2]}` : 'e2b:unknown-rpc') : `e2b:${path}`;
      const id = sandboxIdOf(req);
      if (path === '/health') {
        if (method !== 'GET') throw new E2bHttpError(405, 'GET /health');
        outcome = 'exempt';
        let running = false;
        try {
          running = deps.core.sandboxes.get(id).state === 'running';
        } catch (err) {
          if (!isForkdError(err, 'not_found') && !isForkdError(err, 'invalid_id')) throw err;
        }
        res.statusCode = running ? 204 : 502;
        res.end();
        return;
      }
      outcome = deps.core.access.check(id, header(req, 'x-access-token')) ? 'ok' : 'invalid';
      if (outcome === 'invalid') {
        known(deps.core, id); // an unknown or ended sandbox says so (502) rather than "wrong token"
        throw new ForkdError('unauthorized', 'missing or wrong X-Access-Token for this sandbox');
      }
      const live = known(deps.core, id);
      if (rpc) return serveRpc(live, id, rpc[1]!, rpc[2]!, req, res, abort.signal, deps.core, log);
      if (method === 'GET') return downloadFile(live, url.searchParams, res, abort.signal);
      if (method === 'POST') return uploadFiles(live, url.searchParams, req, res, abort.signal);
      throw new E2bHttpError(405, 'GET or POST /files');
    };
    run().catch((err: unknown) => {
      if (rpc) return sendUnaryError(res, unaryError(err, log));
      sendHttpError(res, httpErrorOf(err, log, requestId));
    });
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

function checkApiKey(auth: BearerAuth, throttle: AuthThrottle, req: IncomingMessage): string {
  const key = header(req, 'x-api-key');
  const outcome = auth.check(key === undefined ? header(req, 'authorization') : `Bearer ${key}`);
  if (outcome === 'invalid') {
    const retry = throttle.fail(req.socket.remoteAddress ?? 'unix');
    if (retry !== undefined)
      throw new E2bHttpError(429, `too many requests with a wrong API key; retry after ${retry} s`, {
        'Retry-After': String(retry),
      });
  }
  if (outcome === 'missing' || outcome === 'invalid')
    throw new E2bHttpError(401, outcome === 'missing' ? 'missing API key (X-API-KEY)' : 'invalid API key');
  return outcome;
}

function sandboxIdOf(req: IncomingMessage): string {
  const id = header(req, 'e2b-sandbox-id');
  if (!id) throw new E2bHttpError(400, 'the E2b-Sandbox-Id header names the sandbox');
  const port = header(req, 'e2b-sandbox-port');
  if (port !== undefined && port !== ENVD_PORT)
    throw new E2bHttpError(
      502,
      `forkd does not route sandbox port ${port.slice(0, 8)}; only the envd API (${ENVD_PORT})`,
    );
  return id;
}

/**
 * The live sandbox; one that does not exist or no longer runs is E2B's 502 (RPC: unavailable),
 * which the SDK reports as a sandbox that is not running any more.
 */
function known(core: ControlCore, id: string): LiveSandbox {
  try {
    return core.sandboxes.running(id);
  } catch (err) {
    if (isForkdError(err, 'not_found') || isForkdError(err, 'invalid_id') || isForkdError(err, 'invalid_state'))
      throw new E2bHttpError(502, `sandbox ${id.slice(0, 80)} is not running`);
    throw err;
  }
}

function knownRpc(service: string, method: string): boolean {
  return service === 'process.Process'
    ? Object.hasOwn(PROCESS_UNARY, method) || Object.hasOwn(PROCESS_STREAMS, method)
    : Object.hasOwn(FILESYSTEM_UNARY, method);
}

function unaryError(err: unknown, log: Logger): RpcError {
  if (err instanceof E2bHttpError)
    return new RpcError(
      err.status === 401 ? 'unauthenticated' : err.status === 502 ? 'unavailable' : 'invalid_argument',
      err.message,
    );
  if (!(err instanceof RpcError) && !(err instanceof ForkdError))
    log.error('unhandled error in an E2B call', {
      error: String(err),
      stack: err instanceof Error ? err.stack : undefined,
    });
  return rpcErrorOf(err);
}

async function serveRpc(
  live: LiveSandbox,
  id: string,
  service: string,
  method: string,
  req: IncomingMessage,
  res: ServerResponse,
  signal: AbortSignal,
  core: ControlCore,
  log: Logger,
): Promise<void> {
  const ctx = { live, env: core.access.envOf(id) };
  // Own properties only: a method named "constructor" or "toString" is not a handler.
  const own = <T>(table: Record<string, T>): T | undefined =>
    Object.hasOwn(table, method) ? table[method] : undefined;
  const stream = service === 'process.Process' ? own(PROCESS_STREAMS) : undefined;
  const unary = service === 'process.Process' ? own(PROCESS_UNARY) : own(FILESYSTEM_UNARY);
  const streaming = String(req.headers['content-type'] ?? '').startsWith('application/connect+');
  if (!stream && !unary) {
    const err = new RpcError('unimplemented', `forkd does not implement ${service}/${method}`);
    if (!streaming) return sendUnaryError(res, err);
    req.resume();
    return startStream(res).end(err);
  }
  if (stream) {
    const call: RpcCall = {
      message: await readRpcRequest(req, 'server_stream'),
      signal,
      timeoutMs: timeoutOf(req),
      headers: req.headers,
    };
    // From here on errors travel in the end-of-stream envelope.
    const out = startStream(res);
    try {
      await stream(ctx, call, out.send);
      out.end();
    } catch (err) {
      out.end(unaryError(err, log));
    }
    return;
  }
  const call: RpcCall = {
    message: await readRpcRequest(req, 'unary'),
    signal,
    timeoutMs: timeoutOf(req),
    headers: req.headers,
  };
  sendUnary(res, await unary!(ctx, call));
}
