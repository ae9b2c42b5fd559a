// Pieces of the E2B surface that need no guest: the Connect framing over real HTTP (port 0),
// error mapping, paths and entries, the --e2b-bind posture, and access tokens in real SQLite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readRpcRequest,
  rpcErrorOf,
  RpcError,
  sendUnaryError,
  startStream,
  timeoutOf,
} from '../../src/api/e2b/connect-protocol.js';
import { entryJson, sandboxPath } from '../../src/api/e2b/filesystem-service.js';
import { checkE2bBind } from '../../src/api/e2b/posture.js';
import { StartupRefusal, type Posture } from '../../src/api/posture.js';
import { SandboxAccess } from '../../src/core/controller/access.js';
import { StateStore } from '../../src/core/state/store.js';
import { ForkdError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import { httpErrorOf, unsupported } from '../../src/api/e2b/errors.js';

function envelope(flags: number, json: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(json));
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Splits a streamed response body into its envelopes. */
function envelopes(body: Buffer): { flags: number; json: unknown }[] {
  const out = [];
  for (let off = 0; off < body.length;) {
    const len = body.readUInt32BE(off + 1);
    out.push({ flags: body[off]!, json: JSON.parse(body.subarray(off + 5, off + 5 + len).toString()) as unknown });
    off += 5 + len;
  }
  return out;
}

async function withServer(
  handler: Parameters<typeof createServer>[1],
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  try {
    await fn(`http://127.0.0.1:${addr.port}`);
  } finally {
    await new Promise((r) => server.close(r));
  }
}

test('Connect framing: a streamed call echoes enveloped messages and ends with an end-stream envelope', async () => {
  await withServer(
    (req, res) => {
      void (async () => {
        try {
          const msg = await readRpcRequest(req, 'server_stream');
          const out = startStream(res);
          await out.send({ echo: msg });
          await out.send({ n: 2 });
          out.end(new RpcError('deadline_exceeded', 'too slow'));
        } catch (err) {
          sendUnaryError(res, rpcErrorOf(err));
        }
      })();
    },
    async (url) => {
      const ok = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/connect+json' },
        body: envelope(0, { path: '/x' }),
      });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('content-type'), 'application/connect+json');
      assert.deepEqual(envelopes(Buffer.from(await ok.arrayBuffer())), [
        { flags: 0, json: { echo: { path: '/x' } } },
        { flags: 0, json: { n: 2 } },
        { flags: 2, json: { error: { code: 'deadline_exceeded', message: 'too slow' } } },
      ]);
      // A lying envelope length, a compressed message, the protobuf codec: refused as Connect errors.
      const lies = Buffer.concat([envelope(0, {}), Buffer.from('x')]);
      for (const [body, type, code, status] of [
        [lies, 'application/connect+json', 'invalid_argument', 400],
        [envelope(1, {}), 'application/connect+json', 'unimplemented', 501],
        [envelope(0, {}), 'application/connect+proto', 'unimplemented', 501],
      ] as const) {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body });
        assert.equal(res.status, status);
        assert.equal(((await res.json()) as { code: string }).code, code);
      }
    },
  );
});

test('Connect errors: forkd codes map onto what the SDK raises; nothing internal leaks', () => {
  const cases: [ForkdError['code'], string][] = [
    ['not_found', 'not_found'],
    ['already_exists', 'already_exists'],
    ['invalid_id', 'invalid_argument'],
    ['busy', 'resource_exhausted'],
    ['timeout', 'deadline_exceeded'],
    ['unavailable', 'unavailable'],
    ['unauthorized', 'unauthenticated'],
    ['invalid_state', 'failed_precondition'],
    ['agent_error', 'unknown'],
    ['vmm_error', 'internal'],
  ];
  for (const [forkd, connect] of cases) assert.equal(rpcErrorOf(new ForkdError(forkd, 'm')).code, connect, forkd);
  const hidden = rpcErrorOf(new Error('secret detail /var/lib/x'));
  assert.equal(hidden.code, 'internal');
  assert.doesNotMatch(hidden.message, /secret/);
});

test('Connect-Timeout-Ms: digits only, capped', () => {
  const req = (v?: string): Parameters<typeof timeoutOf>[0] =>
    ({ headers: v === undefined ? {} : { 'connect-timeout-ms': v } }) as Parameters<typeof timeoutOf>[0];
  assert.equal(timeoutOf(req()), undefined);
  assert.equal(timeoutOf(req('2000')), 2000);
  assert.equal(timeoutOf(req('9999999999')), 7 * 24 * 3600 * 1000);
  for (const bad of ['-1', '1.5', '12345678901', 'x']) assert.throws(() => timeoutOf(req(bad)), RpcError, bad);
});

test('paths are absolute and normalised; entries look like envd EntryInfo', () => {
  assert.equal(sandboxPath('a/b'), '/a/b');
  assert.equal(sandboxPath('/tmp/../etc/./x'), '/etc/x');
  assert.equal(sandboxPath('/../../..'), '/');
  assert.throws(() => sandboxPath(''), RpcError);
  assert.throws(() => sandboxPath('a\0b'), RpcError);
  assert.deepEqual(entryJson('/tmp/f.txt', { name: 'f.txt', type: 'file', size: 12, mode: 0o100644, mtimeMs: 0 }), {
    name: 'f.txt',
    type: 'FILE_TYPE_FILE',
    path: '/tmp/f.txt',
    size: '12',
    mode: 0o644,
    permissions: '-rw-r--r--',
    owner: '',
    group: '',
    modifiedTime: '1970-01-01T00:00:00.000Z',
  });
  const dir = entryJson('/d', { name: 'd', type: 'dir', size: 0, mode: 0o40755, mtimeMs: 0 });
  assert.deepEqual([dir.type, dir.permissions], ['FILE_TYPE_DIRECTORY', 'drwxr-xr-x']);
});

test('--e2b-bind: off by default; off loopback it needs the token and TLS; no unix sockets', () => {
  const posture = (token?: string, tls?: boolean): Posture => ({
    bind: { kind: 'tcp', host: '127.0.0.1', port: 8889 },
    token,
    tls: tls ? { cert: Buffer.from(''), key: Buffer.from('') } : undefined,
    warnings: [],
    notes: [],
  });
  assert.equal(checkE2bBind(undefined, posture(), false), undefined);
  assert.deepEqual(checkE2bBind('127.0.0.1:0', posture(), false), { kind: 'tcp', host: '127.0.0.1', port: 0 });
  assert.throws(() => checkE2bBind('0.0.0.0:8890', posture(), false), StartupRefusal);
  assert.throws(() => checkE2bBind('0.0.0.0:8890', posture('t'), false), /plain HTTP/);
  assert.ok(checkE2bBind('0.0.0.0:8890', posture('t', true), false));
  assert.ok(checkE2bBind('0.0.0.0:8890', posture('t'), true));
  assert.throws(() => checkE2bBind('unix:/tmp/e2b.sock', posture(), false), /TCP/);
  assert.throws(() => checkE2bBind('example.com:1', posture(), false), StartupRefusal);
});

test('access tokens: issued, checked in constant time, kept with the environment, gone with the sandbox', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'forkd-e2b-'));
  try {
    let store = StateStore.open(dir);
    const access = new SandboxAccess(store);
    const token = access.issue('sb-a', { A: '1' });
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(access.check('sb-a', token), true);
    assert.equal(access.check('sb-a', `${token}x`), false);
    assert.equal(access.check('sb-a', undefined), false);
    assert.equal(access.check('sb-b', token), false);
    assert.deepEqual(access.envOf('sb-a'), { A: '1' });
    assert.deepEqual(access.envOf('sb-b'), {});
    const late = access.tokenOf('sb-b'); // made by forkd's own API: issued on first use
    assert.equal(access.tokenOf('sb-b'), late);
    assert.notEqual(late, token);
    store.close();
    // A restarted daemon still accepts the token.
    store = StateStore.open(dir);
    const again = new SandboxAccess(store);
    assert.equal(again.check('sb-a', token), true);
    store.deleteSandbox('sb-a');
    assert.equal(again.check('sb-a', token), false);
    store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('HTTP errors: out of capacity is 429 with Retry-After (the SDK retries, then RateLimitError); unknown errors hide their detail', () => {
  const busy = httpErrorOf(new ForkdError('busy', 'full', { details: { retryAfterSecs: 7 } }), silentLogger, 'r0');
  assert.deepEqual([busy.status, busy.headers['Retry-After']], [429, '7']);
  assert.equal(httpErrorOf(new ForkdError('not_found', 'x'), silentLogger, 'r1').status, 404);
  const hidden = httpErrorOf(new Error('boom at /secret/path'), silentLogger, 'r2');
  assert.equal(hidden.status, 500);
  assert.doesNotMatch(hidden.message, /secret/);
  const no = unsupported('pause/resume', 'snapshot it');
  assert.equal(no.status, 501);
  assert.match(no.message, /^forkd does not support pause\/resume; snapshot it$/);
});
