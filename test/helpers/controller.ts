// Helpers for tests against the real forkd-controller process: a temp data dir (with the
// shared test image hard-linked in, so no image build), start/stop of the daemon on port 0,
// and an HTTP client that sends raw paths (no URL normalisation: "/v1/sandboxes/../x" goes
// out as written) and validates EVERY response against the committed OpenAPI document.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { chmod, link, mkdir, mkdtemp, readdir, readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { Router } from '../../src/api/router.js';
import { compileOperations, createAjv, describeErrors } from '../../src/api/validation.js';
import { ensureImage, TEST_DATA_DIR } from './env.js';

export const CONTROLLER = fileURLToPath(new URL('../../src/bin/forkd-controller.js', import.meta.url));

/**
 * A fresh data dir under /tmp (same file system as the test data dir) with the test images
 * `default` (lean) and `node` (with the JS runtime) linked in.
 */
export async function controllerDataDir(withImage: boolean): Promise<{ root: string; dataDir: string }> {
  const root = await mkdtemp(join(tmpdir(), 'forkd-ctl-'));
  await chmod(root, 0o755); // QEMU runs as the VM user and must traverse to the snapshot files
  const dataDir = join(root, 'data');
  await mkdir(dataDir, { mode: 0o755 });
  if (withImage) {
    for (const name of ['default', 'node'] as const) {
      await ensureImage(name);
      const src = join(TEST_DATA_DIR, 'images', name);
      const dst = join(dataDir, 'images', name);
      await mkdir(dst, { recursive: true, mode: 0o755 });
      for (const f of await readdir(src)) await link(join(src, f), join(dst, f));
    }
  }
  return { root, dataDir };
}

export interface DaemonProcess {
  proc: ChildProcess;
  address: string;
  baseUrl: string;
  stderr: () => string;
  /** Signal and wait for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function daemonArgs(dataDir: string, root: string, extra: string[] = []): string[] {
  return ['serve', '--bind', '127.0.0.1:0', '--data-dir', dataDir, '--audit-log', join(root, 'audit.log'), ...extra];
}

/** Starts the daemon and waits for its `listening` log line (or its exit). */
export async function startDaemon(
  args: string[],
  opts: { env?: Record<string, string>; prefix?: string[]; bin?: string } = {},
): Promise<DaemonProcess> {
  // `prefix`: e.g. setpriv with a capability bounding set; `bin`: another entry point (the gateway's is the same).
  const argv = [...(opts.prefix ?? []), process.execPath, opts.bin ?? CONTROLLER, ...args];
  const proc = spawn(argv[0]!, argv.slice(1), {
    env: { ...process.env, FORKD_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
  proc.stdout.resume();
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not listen within 120 s:\n${err}`)), 120_000);
    const onData = (): void => {
      for (const line of err.split('\n')) {
        if (!line.includes('"msg":"listening"')) continue;
        clearTimeout(timer);
        proc.stderr.off('data', onData);
        resolve((JSON.parse(line) as { address: string }).address);
        return;
      }
    };
    proc.stderr.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited (${String(code)}) before listening:\n${err}`));
    });
  });
  return {
    proc,
    address,
    baseUrl: `http://${address}`,
    stderr: () => err,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** Runs the daemon expecting it to refuse: its exit code and stderr. */
export function runDaemonToExit(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CONTROLLER, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`daemon did not exit: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

// ---- HTTP client with OpenAPI response validation ----

const ops = compileOperations();
const router = new Router(ops);
const ajv = createAjv();
const errorValidator = ajv.compile({ $ref: 'forkd-api#/$defs/Error' });

export interface ApiResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json: unknown;
  text: string;
}

export interface ApiOptions {
  token?: string;
  json?: unknown;
  body?: Buffer | string;
  headers?: Record<string, string>;
  tls?: { ca: Buffer } | undefined;
}

export async function api(base: string, method: string, path: string, opts: ApiOptions = {}): Promise<ApiResponse> {
  const url = new URL(base);
  const headers: Record<string, string> = { ...opts.headers };
  let payload: Buffer | undefined;
  if (opts.json !== undefined) {
    payload = Buffer.from(JSON.stringify(opts.json));
    headers['content-type'] ??= 'application/json';
  } else if (opts.body !== undefined) {
    payload = Buffer.from(opts.body);
    headers['content-type'] ??= 'application/octet-stream';
  }
  if (payload) headers['content-length'] = String(payload.length);
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const res = await new Promise<ApiResponse>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
      {
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port,
        method,
        path,
        headers,
        ...(opts.tls ? { ca: opts.tls.ca } : {}),
        agent: false,
      },
      (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString('utf8');
          let json: unknown;
          if (String(r.headers['content-type'] ?? '').startsWith('application/json')) json = JSON.parse(text);
          resolve({ status: r.statusCode ?? 0, headers: r.headers, body, json, text });
        });
        r.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
  assertConforms(method, path, res);
  return res;
}

/** Every response must be what the document promises for its route and status. */
export function assertConforms(method: string, rawPath: string, res: ApiResponse): void {
  const where = `${method} ${rawPath} -> ${res.status}`;
  const type = String(res.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim();
  let match: ReturnType<Router['match']>;
  try {
    match = router.match(method, rawPath.split('?')[0]!);
  } catch {
    match = { kind: 'not_found' };
  }
  if (res.status >= 400 || match.kind !== 'found') {
    assert.equal(type, 'application/json', `${where}: errors are JSON`);
    assert.ok(errorValidator(res.json), `${where}: ${describeErrors('error body', errorValidator.errors)} ${res.text}`);
    return;
  }
  const spec = match.op.responses.get(String(res.status));
  assert.ok(spec, `${where}: status ${res.status} is not documented for ${match.op.operationId}`);
  if (spec.size === 0) {
    assert.equal(res.body.length, 0, `${where}: documented without a body`);
    return;
  }
  assert.ok(spec.has(type), `${where}: content type ${type} is not documented`);
  const validate = spec.get(type);
  if (!validate) return; // binary
  const docs =
    type === 'application/x-ndjson'
      ? res.text
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as unknown)
      : [type === 'application/json' ? res.json : res.text];
  for (const doc of docs)
    assert.ok(
      validate(doc),
      `${where}: ${describeErrors('response', validate.errors)} ${JSON.stringify(doc).slice(0, 500)}`,
    );
}

export function errorCode(res: ApiResponse): string {
  return (res.json as { code: string }).code;
}

/**
 * A throwaway self-signed certificate for localhost, 127.0.0.1 and any `ips` (key mode 0600),
 * via the openssl CLI.
 */
export async function selfSigned(dir: string, ips: readonly string[] = []): Promise<{ cert: string; key: string }> {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const san = ['IP:127.0.0.1', 'DNS:localhost', ...ips.map((a) => `IP:${a}`)].join(',');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    `subjectAltName=${san}`,
  ]);
  await chmod(key, 0o600);
  return { cert, key };
}

/** POST /v1/snapshots and wait until the build is `ready` (fails the test if it fails). */
export async function buildSnapshotVia(baseUrl: string, body: { tag: string; mem_mib: number }): Promise<void> {
  const res = await api(baseUrl, 'POST', '/v1/snapshots', { json: body });
  assert.equal(res.status, 202, res.text);
  for (;;) {
    const s = (await api(baseUrl, 'GET', `/v1/snapshots/${body.tag}`)).json as { status: string; error: string | null };
    if (s.status === 'ready') return;
    assert.notEqual(s.status, 'failed', String(s.error));
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A process's resident memory and open file descriptors, from /proc. */
export async function processFigures(pid: number): Promise<{ rssMiB: number; fds: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return {
    rssMiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024,
    fds: (await readdir(`/proc/${pid}/fd`)).length,
  };
}
