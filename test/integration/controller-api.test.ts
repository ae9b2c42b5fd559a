// forkd-controller as a process, without guests: start-up refusals, TLS versions and suites,
// auth on every route, the hostile tag/id corpus on every route, request limits, the audit log
// and metrics of all that. Every response is checked against the OpenAPI document (api()).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { request as httpRequest } from 'node:http';
import { join, relative } from 'node:path';
import { HOSTILE_TAGS } from '../helpers/corpus.js';
import { findLeaks } from '../helpers/leaks.js';
import {
  api,
  controllerDataDir,
  daemonArgs,
  errorCode,
  runDaemonToExit,
  startDaemon,
  type DaemonProcess,
  selfSigned,
} from '../helpers/controller.js';

const TOKEN = 'a3f1c9d27be04e8f9a61c5d3b7e2f0a4';
const UNKNOWN_ID = 'sb-aaaaaaaaaaaaaaaa';

/** One request per operation of the document, with ids and tags that are valid but unknown. */
const ROUTES: { method: string; path: string; json?: unknown; body?: string }[] = [
  { method: 'GET', path: '/version' },
  { method: 'GET', path: '/metrics' },
  { method: 'GET', path: '/v1/openapi.json' },
  { method: 'GET', path: '/v1/snapshots' },
  { method: 'POST', path: '/v1/snapshots', json: { tag: 'nope-img', image: 'no-such-image' } },
  { method: 'GET', path: '/v1/snapshots/no-such-tag' },
  { method: 'DELETE', path: '/v1/snapshots/no-such-tag' },
  { method: 'GET', path: '/v1/sandboxes' },
  { method: 'POST', path: '/v1/sandboxes', json: { snapshot_tag: 'no-such-tag' } },
  { method: 'GET', path: `/v1/sandboxes/${UNKNOWN_ID}` },
  { method: 'DELETE', path: `/v1/sandboxes/${UNKNOWN_ID}` },
  { method: 'POST', path: `/v1/sandboxes/${UNKNOWN_ID}/exec`, json: { args: ['true'] } },
  { method: 'POST', path: `/v1/sandboxes/${UNKNOWN_ID}/exec/stream`, json: { cmd: 'true' } },
  { method: 'POST', path: `/v1/sandboxes/${UNKNOWN_ID}/eval`, json: { code: '1' } },
  { method: 'POST', path: `/v1/sandboxes/${UNKNOWN_ID}/ping` },
  { method: 'GET', path: `/v1/sandboxes/${UNKNOWN_ID}/files?path=/etc/hostname` },
  { method: 'PUT', path: `/v1/sandboxes/${UNKNOWN_ID}/files?path=/tmp/x`, body: 'x' },
  { method: 'DELETE', path: `/v1/sandboxes/${UNKNOWN_ID}/files?path=/tmp/x` },
  { method: 'GET', path: `/v1/sandboxes/${UNKNOWN_ID}/files/list?path=/` },
  { method: 'GET', path: `/v1/sandboxes/${UNKNOWN_ID}/files/stat?path=/etc/hostname` },
  { method: 'POST', path: `/v1/sandboxes/${UNKNOWN_ID}/files/mkdir`, json: { path: '/tmp/d', parents: true } },
  { method: 'POST', path: `/v1/sandboxes/${UNKNOWN_ID}/files/rename`, json: { from: '/tmp/a', to: '/tmp/b' } },
  { method: 'POST', path: `/v1/sandboxes/${UNKNOWN_ID}/ttl`, json: { ttl_secs: 60 } },
  { method: 'GET', path: `/v1/sandboxes/${UNKNOWN_ID}/processes` },
  {
    method: 'POST',
    path: `/v1/sandboxes/${UNKNOWN_ID}/processes`,
    json: { args: ['sh'], pty: { cols: 80, rows: 24 } },
  },
  { method: 'GET', path: `/v1/sandboxes/${UNKNOWN_ID}/processes/42/events` },
  { method: 'POST', path: `/v1/sandboxes/${UNKNOWN_ID}/processes/42/input`, json: { data: 'eA==' } },
  { method: 'POST', path: `/v1/sandboxes/${UNKNOWN_ID}/processes/42/close-input` },
  { method: 'POST', path: `/v1/sandboxes/${UNKNOWN_ID}/processes/42/signal`, json: { signal: 'SIGTERM' } },
  { method: 'POST', path: `/v1/sandboxes/${UNKNOWN_ID}/processes/42/resize`, json: { cols: 80, rows: 24 } },
];

async function tree(dir: string, skip: (rel: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const rel = relative(dir, p);
      if (skip(rel)) continue;
      const st = await stat(p);
      out.push(`${rel} ${st.size} ${st.mtimeMs}`);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

describe('forkd-controller: start-up refusals', () => {
  let root: string;
  let dataDir: string;
  const file = async (name: string, content: string, mode = 0o600): Promise<string> => {
    const p = join(root, name);
    await writeFile(p, content);
    await chmod(p, mode);
    return p;
  };
  const refused = async (extra: string[], pattern: RegExp, env: Record<string, string> = {}): Promise<void> => {
    // No --bind unless the test gives one: the environment variable must be read.
    const args = ['serve', '--data-dir', dataDir, '--audit-log', join(root, 'audit.log'), ...extra];
    const r = await runDaemonToExit(args, { env });
    assert.notEqual(r.code, 0, `exit code for ${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.ok(!r.stderr.includes('"msg":"listening"'), 'it must not have listened');
  };

  before(async () => {
    ({ root, dataDir } = await controllerDataDir(false));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('a non-loopback bind without a token file', async () => {
    await refused(
      ['--bind', '0.0.0.0:0'],
      /refusing to start: refusing to listen on 0\.0\.0\.0:0 without --token-file/,
    );
    // The environment variable is read too; the flag wins over it.
    await refused([], /without --token-file/, { FORKD_BIND: '0.0.0.0:0' });
    const d = await startDaemon(daemonArgs(dataDir, root), { env: { FORKD_BIND: '0.0.0.0:0' } });
    assert.match(d.address, /^127\.0\.0\.1:\d+$/);
    assert.match(
      d.stderr(),
      /auth is OFF: no --token-file, allowed only because 127\.0\.0\.1:0 is reachable from this host alone/,
    );
    assert.equal(await d.stop(), 0);
  });

  test('a non-loopback bind without TLS (unless --insecure-no-tls, which warns loudly)', async () => {
    const token = await file('token', `${TOKEN}\n`);
    await refused(['--bind', '0.0.0.0:0', '--token-file', token], /refusing plain HTTP on non-loopback 0\.0\.0\.0:0/);
    // A repeated flag: the last one wins (daemonArgs binds 127.0.0.1:0 first).
    const d = await startDaemon(
      daemonArgs(dataDir, root, ['--bind', '0.0.0.0:0', '--token-file', token, '--insecure-no-tls']),
    );
    try {
      assert.match(d.stderr(), /\*\*\* WARNING: INSECURE: serving plain HTTP on non-loopback/);
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });

  test('bad tokens: empty, blank, short, placeholders', async () => {
    for (const [content, pattern] of [
      ['', /is empty/],
      ['   \n\t\n', /is empty/],
      ['short-token', /is only 11 bytes/],
      ['123456789012345', /is only 15 bytes/],
      ['REPLACE_ME_WITH_32_BYTES_BASE64', /placeholder/],
      ['CHANGE_ME_0123456789abcdef', /placeholder/],
    ] as const) {
      const token = await file('token-bad', content);
      await refused(['--token-file', token], pattern);
    }
  });

  test('only one of --tls-cert / --tls-key', async () => {
    const key = await file('only.key', 'x');
    await refused(['--tls-cert', join(root, 'only.pem')], /--tls-cert and --tls-key go together/);
    await refused(['--tls-key', key], /--tls-cert and --tls-key go together/);
  });

  test('a token or key file readable by group or others', async () => {
    const token = await file('token-loose', TOKEN, 0o644);
    await refused(['--token-file', token], /accessible to group or others \(mode 0644\); run: chmod 600/);
    const { cert, key } = await selfSigned(root);
    await chmod(key, 0o640);
    await refused(['--tls-cert', cert, '--tls-key', key], /TLS key .* accessible to group or others \(mode 0640\)/);
  });

  test('a unix socket listener is mode 0600 and serves the API', async () => {
    const sock = join(root, 'api.sock');
    const d = await startDaemon(daemonArgs(dataDir, root, ['--bind', `unix:${sock}`]));
    try {
      assert.equal(d.address, `unix:${sock}`);
      assert.equal((await stat(sock)).mode & 0o777, 0o600);
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpRequest({ socketPath: sock, path: '/version', agent: false }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal((JSON.parse(body) as { api: string }).api, 'v1');
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });

  test('--branch-concurrency must be at least 1', async () => {
    await refused(['--branch-concurrency', '0'], /--branch-concurrency must be a whole number from 1/);
  });

  test('--default-egress must be allow or deny: anything else is one line and a non-zero exit', async () => {
    for (const [extra, env] of [
      [['--default-egress', 'bogus'], {}],
      [['--default-egress', '198.51.100.0/24'], {}],
      [[], { FORKD_DEFAULT_EGRESS: 'bogus' }],
    ] as [string[], Record<string, string>][]) {
      const args = ['serve', '--data-dir', dataDir, '--audit-log', join(root, 'audit.log'), ...extra];
      const r = await runDaemonToExit(args, { env });
      assert.notEqual(r.code, 0, `${extra.join(' ')}: ${r.stderr}`);
      assert.deepEqual(r.stderr.trimEnd().split('\n'), [r.stderr.trimEnd()], `one line: ${r.stderr}`);
      assert.match(r.stderr, /^forkd-controller: refusing to start: --default-egress must be "allow" or "deny", got "/);
    }
    // The flag wins over the environment variable; the start-up line says what is in force.
    const d = await startDaemon(daemonArgs(dataDir, root, ['--default-egress', 'allow']), {
      env: { FORKD_DEFAULT_EGRESS: 'bogus' },
    });
    try {
      assert.match(d.stderr(), /"msg":"listening".*"default_egress":"allow"/);
      assert.match(d.stderr(), /default egress is ALLOW/);
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });
});

describe('forkd-controller: TLS', () => {
  let root: string;
  let d: DaemonProcess;
  let ca: Buffer;
  let port: number;

  before(async () => {
    const dirs = await controllerDataDir(false);
    root = dirs.root;
    const { cert, key } = await selfSigned(root);
    ca = await readFile(cert);
    const token = join(root, 'token');
    await writeFile(token, TOKEN, { mode: 0o600 });
    d = await startDaemon(
      daemonArgs(dirs.dataDir, root, ['--tls-cert', cert, '--tls-key', key, '--token-file', token]),
    );
    port = Number(d.address.split(':').pop());
  });
  after(async () => {
    assert.equal(await d.stop(), 0);
    await rm(root, { recursive: true, force: true });
  });

  const handshake = (opts: {
    minVersion?: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
    maxVersion?: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
    ciphers?: string;
  }): Promise<{ ok: true; protocol: string | null; cipher: string } | { ok: false; error: string }> =>
    new Promise((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...opts }, () => {
        resolve({ ok: true, protocol: s.getProtocol(), cipher: s.getCipher().name });
        s.end();
      });
      s.once('error', (err: Error) => resolve({ ok: false, error: err.message }));
    });

  test('TLS 1.3 and TLS 1.2 with an AEAD suite connect', async () => {
    const v13 = await handshake({ minVersion: 'TLSv1.3' });
    assert.ok(v13.ok && v13.protocol === 'TLSv1.3', JSON.stringify(v13));
    const v12 = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' });
    assert.ok(
      v12.ok && v12.protocol === 'TLSv1.2' && v12.cipher === 'ECDHE-RSA-AES128-GCM-SHA256',
      JSON.stringify(v12),
    );
    const chacha = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-CHACHA20-POLY1305' });
    assert.ok(chacha.ok, JSON.stringify(chacha));
    const res = await api(`https://${d.address}`, 'GET', '/version', { token: TOKEN, tls: { ca } });
    assert.equal(res.status, 200);
  });

  test('TLS 1.1, a TLS 1.2 CBC suite and static RSA key exchange are refused', async () => {
    // SECLEVEL=0 lets this client offer TLS 1.1 at all: the refusal must come from the server.
    const v11 = await handshake({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    assert.equal(v11.ok, false);
    assert.match((v11 as { error: string }).error, /protocol version|unsupported protocol|alert/i);
    const cbc = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA' });
    assert.equal(cbc.ok, false, 'CBC suites must not be negotiable');
    const staticRsa = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256:AES256-GCM-SHA384' });
    assert.equal(staticRsa.ok, false, 'static RSA key exchange must not be negotiable');
  });
});

describe('forkd-controller: auth, hostile input, limits, audit, metrics', () => {
  let root: string;
  let dataDir: string;
  let d: DaemonProcess;
  let base: string;

  before(async () => {
    ({ root, dataDir } = await controllerDataDir(false));
    const token = join(root, 'token');
    await writeFile(token, `  ${TOKEN}\n`, { mode: 0o600 }); // surrounding whitespace is trimmed
    // Decoys a traversal would reach: <data>/x (from snapshots/../x) and <root>/decoy.
    await mkdir(join(dataDir, 'x'), { recursive: true });
    await writeFile(join(dataDir, 'x', 'snapshot.json'), '{}');
    await writeFile(join(root, 'decoy'), 'decoy');
    d = await startDaemon(daemonArgs(dataDir, root, ['--token-file', token]));
    base = d.baseUrl;
  });
  after(async () => {
    assert.equal(await d.stop(), 0);
    await rm(root, { recursive: true, force: true });
    assert.deepEqual(await findLeaks(dataDir), []);
  });

  test('healthz needs no token; every other route answers 401 without or with a wrong token', async () => {
    assert.equal((await api(base, 'GET', '/healthz')).status, 200);
    for (const r of ROUTES) {
      for (const token of [undefined, 'wrong-token-0123456789', `${TOKEN}x`, TOKEN.slice(0, -1)]) {
        const res = await api(base, r.method, r.path, {
          ...(token ? { token } : {}),
          ...(r.json ? { json: r.json } : {}),
          ...(r.body ? { body: r.body } : {}),
        });
        assert.equal(res.status, 401, `${r.method} ${r.path} with ${String(token)}`);
        assert.equal(errorCode(res), 'unauthorized');
        assert.match(String(res.headers['www-authenticate']), /^Bearer/);
      }
    }
    // Unknown routes too: nothing about the API is discoverable without the token.
    assert.equal((await api(base, 'GET', '/v1/nothing')).status, 401);
  });

  test('with the right token every route is served (404 for the unknown ids and tags)', async () => {
    const expected: Record<string, number> = { GET: 200 };
    for (const r of ROUTES) {
      const res = await api(base, r.method, r.path, {
        token: TOKEN,
        ...(r.json ? { json: r.json } : {}),
        ...(r.body ? { body: r.body } : {}),
      });
      const unknown =
        /no-such|sb-a{16}/.test(r.path) ||
        (r.path === '/v1/snapshots' && r.method === 'POST') ||
        (r.path === '/v1/sandboxes' && r.method === 'POST');
      assert.equal(res.status, unknown ? 404 : expected[r.method], `${r.method} ${r.path}: ${res.text.slice(0, 300)}`);
    }
    assert.equal((await api(base, 'GET', '/v1/nothing', { token: TOKEN })).status, 404);
    const wrongMethod = await api(base, 'PATCH', '/v1/sandboxes', { token: TOKEN });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.allow, 'GET, POST');
  });

  test('every route given a hostile tag or id answers 400 and touches nothing', async () => {
    const skip = (rel: string): boolean => rel === 'audit.log' || rel.startsWith('data/forkd.db');
    const before = await tree(root, skip);
    const ids = [
      ...HOSTILE_TAGS,
      'SB-AAAAAAAAAAAAAAAA',
      'sb-aaaaaaaaaaaaaaa1',
      'sb-aaaaaaaaaaaaaaaaa',
      `sb-aaaaaaaaaaaaaaaa/../..`,
    ];
    for (const bad of ids) {
      const enc = encodeURIComponent(bad);
      for (const r of ROUTES.filter((x) => x.path.includes(UNKNOWN_ID))) {
        const res = await api(base, r.method, r.path.replace(UNKNOWN_ID, enc), {
          token: TOKEN,
          ...(r.json ? { json: r.json } : {}),
          ...(r.body ? { body: r.body } : {}),
        });
        assert.equal(res.status, 400, `${r.method} ${r.path.replace(UNKNOWN_ID, enc)}: ${res.text}`);
        assert.equal(errorCode(res), 'invalid_id');
      }
    }
    for (const bad of HOSTILE_TAGS) {
      const enc = encodeURIComponent(bad);
      for (const method of ['GET', 'DELETE']) {
        const res = await api(base, method, `/v1/snapshots/${enc}`, { token: TOKEN });
        assert.equal(res.status, 400, `${method} /v1/snapshots/${enc}: ${res.text}`);
        assert.equal(errorCode(res), 'invalid_tag');
      }
      for (const [path, json] of [
        ['/v1/sandboxes', { snapshot_tag: bad }],
        ['/v1/snapshots', { tag: bad }],
        ['/v1/snapshots', { tag: 'fine', image: bad }],
      ] as const) {
        const res = await api(base, 'POST', path, { token: TOKEN, json });
        assert.equal(res.status, 400, `POST ${path} ${JSON.stringify(json)}: ${res.text}`);
        assert.equal(errorCode(res), 'invalid_tag');
      }
      const list = await api(base, 'GET', `/v1/sandboxes?snapshot_tag=${enc}`, { token: TOKEN });
      assert.equal(list.status, 400, `list filter ${JSON.stringify(bad)}`);
    }
    // Hostile guest paths are refused by the schema before any sandbox lookup.
    for (const p of ['', 'etc/passwd', '%00', 'a']) {
      for (const route of ['files', 'files/stat']) {
        const res = await api(base, 'GET', `/v1/sandboxes/${UNKNOWN_ID}/${route}?path=${p}`, { token: TOKEN });
        assert.equal(res.status, 400, `${route} path=${p}`);
      }
    }
    // ...in JSON bodies too (mkdir, rename), whichever side of a rename they are on.
    const over = `/${'a'.repeat(4096)}`;
    for (const p of ['', 'etc/passwd', '/a\u0000b', 'a', over, 7, null]) {
      for (const [route, json] of [
        ['files/mkdir', { path: p }],
        ['files/rename', { from: p, to: '/tmp/b' }],
        ['files/rename', { from: '/tmp/a', to: p }],
      ] as const) {
        const res = await api(base, 'POST', `/v1/sandboxes/${UNKNOWN_ID}/${route}`, { token: TOKEN, json });
        assert.equal(res.status, 400, `${route} ${JSON.stringify(json).slice(0, 80)}: ${res.text}`);
        assert.equal(errorCode(res), 'invalid_argument');
      }
    }
    assert.deepEqual(await tree(root, skip), before, 'nothing under the temp root changed');
    assert.equal(await readFile(join(root, 'decoy'), 'utf8'), 'decoy');
  });

  test('limits: n, boot_wait_secs, unknown fields, query, content type, body size', async () => {
    const post = (path: string, json: unknown): Promise<Awaited<ReturnType<typeof api>>> =>
      api(base, 'POST', path, { token: TOKEN, json });
    for (const json of [
      { snapshot_tag: 'x', n: 0 },
      { snapshot_tag: 'x', n: 1001 },
      { snapshot_tag: 'x', n: 1.5 },
      { snapshot_tag: 'x', n: '1' },
      { snapshot_tag: 'x', bogus: true },
      { snapshot_tag: 'x', ttl_secs: 0 },
      { snapshot_tag: 'x', metadata: { 'bad key': 'v' } },
      { snapshot_tag: 'x', metadata: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) },
      {},
    ]) {
      const res = await post('/v1/sandboxes', json);
      assert.equal(res.status, 400, `${JSON.stringify(json).slice(0, 80)}: ${res.text}`);
    }
    for (const json of [
      { tag: 'ok', boot_wait_secs: 61 },
      { tag: 'ok', boot_wait_secs: 0 },
      { tag: 'ok', mem_mib: 64 },
      { tag: 'ok', extra: 1 },
    ]) {
      assert.equal((await post('/v1/snapshots', json)).status, 400, JSON.stringify(json));
    }
    for (const json of [
      { args: [] },
      { args: ['a'], cmd: 'b' },
      { cmd: 'x', timeout_secs: 86_401 },
      { cmd: 'x', env: { 'A B': '1' } },
      { cmd: 'x', shell: 'y' },
    ]) {
      const res = await post(`/v1/sandboxes/${UNKNOWN_ID}/exec`, json);
      assert.equal(res.status, 400, `exec ${JSON.stringify(json)}: ${res.text}`);
    }
    for (const json of [{}, { ttl_secs: 0 }, { ttl_secs: 604_801 }, { ttl_secs: 2.5 }, { ttl_secs: 60, n: 1 }]) {
      const res = await post(`/v1/sandboxes/${UNKNOWN_ID}/ttl`, json);
      assert.equal(res.status, 400, `ttl ${JSON.stringify(json)}: ${res.text}`);
    }
    for (const json of [{ path: '/tmp/d', parents: 'yes' }, { path: '/tmp/d', mode: 7 }, { from: '/a' }]) {
      const route = 'from' in json ? 'files/rename' : 'files/mkdir';
      assert.equal((await post(`/v1/sandboxes/${UNKNOWN_ID}/${route}`, json)).status, 400, JSON.stringify(json));
    }
    assert.equal((await api(base, 'DELETE', '/v1/snapshots/x?cascade=true&force=true', { token: TOKEN })).status, 400);
    assert.equal((await api(base, 'DELETE', '/v1/snapshots/x?cascade=1', { token: TOKEN })).status, 400);
    assert.equal((await api(base, 'GET', '/v1/sandboxes?state=zombie', { token: TOKEN })).status, 400);
    assert.equal((await api(base, 'GET', '/v1/sandboxes?limit=5', { token: TOKEN })).status, 400);
    assert.equal((await api(base, 'GET', '/v1/sandboxes', { token: TOKEN, body: 'x' })).status, 400);
    const notJson = await api(base, 'POST', '/v1/sandboxes', {
      token: TOKEN,
      body: '{"snapshot_tag":"x"}',
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(notJson.status, 415);
    const broken = await api(base, 'POST', '/v1/sandboxes', {
      token: TOKEN,
      body: '{"snapshot_tag":',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(broken.status, 400);
    const huge = await api(base, 'POST', '/v1/sandboxes', {
      token: TOKEN,
      json: { snapshot_tag: 'x', metadata: { k: 'v'.repeat(3 * 1024 * 1024) } },
    });
    assert.equal(huge.status, 413);
    assert.equal(errorCode(huge), 'payload_too_large');
    // The daemon still serves after all that.
    assert.equal((await api(base, 'GET', '/version', { token: TOKEN })).status, 200);
  });

  test('bad limits and egress policies: 400 before any lookup, row or host change', async () => {
    const cgroupDirs = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const ctl of ['memory', 'cpu', 'pids', 'unified', ''])
        for (const d of await readdir(join('/sys/fs/cgroup', ctl, 'forkd')).catch(() => [] as string[]))
          if (d.startsWith('sb-')) out.push(`${ctl}/${d}`);
      return out;
    };
    // Sandbox namespaces only: a daemon of the host lane may hold its start-up probe meanwhile.
    const sandboxNetns = async (): Promise<string[]> =>
      (await readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.startsWith('fk-'));
    const netnsBefore = await sandboxNetns();
    const cgroupsBefore = await cgroupDirs();
    // A tag that does not exist: validation must answer before the 404 would.
    const netns = { snapshot_tag: 'no-such-tag', per_child_netns: true };
    const many = Array.from({ length: 257 }, (_, i) => `10.${Math.floor(i / 256)}.${i % 256}.0/24`);
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { ...netns, egress: { allow: ['10.0.0.1/8'] } },
        /egress CIDR "10\.0\.0\.1\/8" has host bits set; did you mean 10\.0\.0\.0\/8\?/,
      ],
      [
        { ...netns, egress: { allow: ['198.51.100.0/24', 'example.com/32'] } },
        /"example\.com\/32" is not an IPv4 CIDR/,
      ],
      [{ ...netns, egress: { allow: ['fe80::/10'] } }, /is not an IPv4 CIDR/],
      [{ ...netns, egress: { allow: many } }, /egress allow-list has 257 entries; at most 256/],
      [{ ...netns, egress: { allow: 'x' } }, /body\.egress\.allow must be array/],
      [{ ...netns, egress: { deny: [] } }, /body\.egress must be "allow", "deny" or \{"allow"/],
      [{ ...netns, egress: 'open' }, /body\.egress must be "allow", "deny"/],
      [{ snapshot_tag: 'no-such-tag', egress: 'allow' }, /egress needs per_child_netns: true/],
      [{ snapshot_tag: 'no-such-tag', per_child_netns: false, egress: 'deny' }, /egress needs per_child_netns: true/],
      [{ snapshot_tag: 'no-such-tag', cpu_limit: 0 }, /body\.cpu_limit must be >= 0\.01/],
      [{ snapshot_tag: 'no-such-tag', cpu_limit: 1025 }, /body\.cpu_limit must be <= 1024/],
      [{ snapshot_tag: 'no-such-tag', cpu_limit: '1' }, /body\.cpu_limit must be number/],
      [{ snapshot_tag: 'no-such-tag', pids_limit: 15 }, /body\.pids_limit must be >= 16/],
      [{ snapshot_tag: 'no-such-tag', pids_limit: 64.5 }, /body\.pids_limit must be integer/],
    ];
    for (const [json, message] of cases) {
      const res = await api(base, 'POST', '/v1/sandboxes', { token: TOKEN, json });
      const shown = JSON.stringify(json).slice(0, 120);
      assert.equal(res.status, 400, `${shown}: ${res.text}`);
      assert.equal(errorCode(res), 'invalid_argument', shown);
      assert.match((res.json as { error: string }).error, message, shown);
    }
    // Valid values get as far as the snapshot lookup.
    const fine = await api(base, 'POST', '/v1/sandboxes', {
      token: TOKEN,
      json: { ...netns, cpu_limit: 0.5, pids_limit: 64, egress: { allow: ['198.51.100.0/24'] } },
    });
    assert.equal(fine.status, 404, fine.text);
    const list = await api(base, 'GET', '/v1/sandboxes', { token: TOKEN });
    assert.deepEqual((list.json as { sandboxes: unknown[] }).sandboxes, [], 'no sandbox row was created');
    assert.deepEqual(await sandboxNetns(), netnsBefore, 'no namespace');
    assert.deepEqual(await cgroupDirs(), cgroupsBefore, 'no cgroup');
  });

  test('audit log: one line per request (401s and 404s too), never the token; SIGHUP reopens it', async () => {
    const path = join(root, 'audit.log');
    const lines = (await readFile(path, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(!(await readFile(path, 'utf8')).includes(TOKEN), 'the token never reaches the audit log');
    const r401 = lines.find((l) => l.status === 401 && l.path === '/version');
    assert.ok(r401, 'a 401 is audited');
    assert.equal(r401.auth, 'missing');
    assert.ok(lines.some((l) => l.status === 401 && l.auth === 'invalid'));
    const r404 = lines.find((l) => l.status === 404 && l.path === '/v1/nothing');
    assert.ok(r404, 'an unknown route is audited');
    for (const key of ['ts', 'method', 'path', 'status', 'latency_ms', 'remote', 'user_agent', 'request_id', 'auth'])
      assert.ok(key in r404, `field ${key}`);
    assert.match(String(r404.ts), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.match(String(r404.remote), /^127\.0\.0\.1:\d+$/);
    assert.ok(
      lines.every((l) => !String(l.path).includes('?')),
      'no query strings',
    );
    // Rotation: move the file away, SIGHUP, and the next request lands in a new file.
    await rename(path, `${path}.1`);
    d.proc.kill('SIGHUP');
    for (let i = 0; i < 50; i++) {
      await api(base, 'GET', '/healthz');
      if ((await readFile(path, 'utf8').catch(() => '')).includes('/healthz')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(await readFile(path, 'utf8'), /"path":"\/healthz"/);
  });

  test('metrics count requests by route and status, auth failures, and expose the caps', async () => {
    const text = (await api(base, 'GET', '/metrics', { token: TOKEN })).text;
    assert.match(text, /^forkd_auth_failures_total\{reason="missing"\} [1-9]\d*$/m);
    assert.match(text, /^forkd_auth_failures_total\{reason="invalid"\} [1-9]\d*$/m);
    assert.match(
      text,
      /^forkd_http_requests_total\{route="\/v1\/sandboxes\/\{id\}\/exec",method="POST",status="400"\} [1-9]\d*$/m,
    );
    assert.match(text, /^forkd_branch_concurrency_cap 4$/m);
    assert.match(text, /^forkd_branches_in_flight 0$/m);
    assert.match(text, /^forkd_sandboxes_active 0$/m);
    // The Node the daemon runs on (the suite runs on each supported line: README).
    const node = process.version.replace(/\./g, '\\.');
    assert.match(
      text,
      new RegExp(`^forkd_build_info\\{version="[^"]+",node="${node}",qemu="[^"]+",accel="(kvm|tcg)"\\} 1$`, 'm'),
    );
    assert.match(text, /^# TYPE forkd_spawn_latency_seconds histogram$/m);
    assert.match(text, /^# TYPE forkd_restore_latency_seconds histogram$/m);
  });
});
