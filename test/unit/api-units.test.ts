// Pure pieces of the API layer: bind parsing and the loopback rule, token rules, bearer
// comparison, the router's refusal to decode a traversal, request schemas, metrics text, the
// TLS suite list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bindText, isLocalOnly, parseBind } from '../../src/api/bind.js';
import { BearerAuth } from '../../src/api/auth.js';
import { tokenProblem } from '../../src/api/posture.js';
import { Router } from '../../src/api/router.js';
import { compileOperations, describeErrors } from '../../src/api/validation.js';
import { Metrics } from '../../src/api/metrics.js';
import { TLS_CIPHERS } from '../../src/api/tls.js';
import { OPENAPI_DOCUMENT } from '../../src/api/openapi.js';
import { loadControllerConfig } from '../../src/lib/config.js';
import { ForkdError } from '../../src/lib/errors.js';

test('bind: addresses, unix sockets, and what counts as local', () => {
  assert.deepEqual(parseBind('127.0.0.1:8889'), { kind: 'tcp', host: '127.0.0.1', port: 8889 });
  assert.deepEqual(parseBind('[::1]:0'), { kind: 'tcp', host: '::1', port: 0 });
  assert.deepEqual(parseBind('localhost:1'), { kind: 'tcp', host: '127.0.0.1', port: 1 });
  assert.deepEqual(parseBind('unix:/run/forkd/api.sock'), { kind: 'unix', path: '/run/forkd/api.sock' });
  for (const bad of [
    'example.com:80',
    '127.0.0.1',
    '127.0.0.1:65536',
    'unix:relative.sock',
    ':80',
    '[::1]',
    '1.2.3.4:x',
  ])
    assert.throws(() => parseBind(bad), Error, bad);
  for (const local of ['127.0.0.1:1', '127.8.9.10:1', '[::1]:1', '[0:0:0:0:0:0:0:1]:1', 'unix:/x'])
    assert.equal(isLocalOnly(parseBind(local)), true, local);
  for (const remote of ['0.0.0.0:1', '[::]:1', '10.0.0.1:1', '[::ffff:127.0.0.1]:1', '192.168.1.1:1'])
    assert.equal(isLocalOnly(parseBind(remote)), false, remote);
  assert.equal(bindText(parseBind('[::1]:5')), '[::1]:5');
});

test('token rules: empty, placeholders, fewer than 16 bytes', () => {
  assert.match(tokenProblem('', '/t') ?? '', /empty/);
  assert.match(tokenProblem('REPLACE_ME_WITH_32_BYTES_BASE64', '/t') ?? '', /placeholder/);
  assert.match(tokenProblem('CHANGE_ME-please-0123456789', '/t') ?? '', /placeholder/);
  assert.match(tokenProblem('0123456789abcde', '/t') ?? '', /only 15 bytes/);
  assert.equal(tokenProblem('0123456789abcdef', '/t'), undefined);
  // Bytes, not characters: 8 two-byte characters are 16 bytes.
  assert.equal(tokenProblem('éééééééé', '/t'), undefined);
  assert.match(tokenProblem('ééééééé', '/t') ?? '', /only 14 bytes/);
});

test('bearer auth: exact token only, any length mismatch is simply invalid', () => {
  const auth = new BearerAuth('0123456789abcdef0123');
  assert.equal(auth.check('Bearer 0123456789abcdef0123'), 'ok');
  assert.equal(auth.check('bearer 0123456789abcdef0123'), 'ok');
  assert.equal(auth.check(undefined), 'missing');
  assert.equal(auth.check('Basic abc'), 'missing');
  assert.equal(auth.check('Bearer'), 'missing');
  for (const t of ['0123456789abcdef012', '0123456789abcdef01234', '0123456789abcdef0124', 'x'])
    assert.equal(auth.check(`Bearer ${t}`), 'invalid', t);
  assert.equal(new BearerAuth(undefined).check(undefined), 'disabled');
  assert.equal(BearerAuth.exempt('GET', '/healthz'), true);
  for (const [m, p] of [
    ['GET', '/healthz/'],
    ['POST', '/healthz'],
    ['GET', '/Healthz'],
    ['GET', '/healthz%2F'],
  ] as const)
    assert.equal(BearerAuth.exempt(m, p), false, `${m} ${p}`);
});

test('router: matches the document, never decodes a slash into a path', () => {
  const router = new Router(compileOperations());
  const m = router.match('POST', '/v1/sandboxes/sb-aaaaaaaaaaaaaaaa/exec');
  assert.equal(m.kind, 'found');
  assert.equal(m.kind === 'found' && m.op.operationId, 'exec');
  const trav = router.match('GET', '/v1/snapshots/..%2F..%2Fetc');
  assert.equal(trav.kind === 'found' && trav.params.tag, '../../etc');
  assert.equal(router.match('GET', '/v1/snapshots/../etc').kind, 'not_found');
  assert.deepEqual(router.match('PUT', '/v1/sandboxes'), { kind: 'method_not_allowed', allow: ['GET', 'POST'] });
  assert.throws(
    () => router.match('GET', '/v1/snapshots/%zz'),
    (e: unknown) => e instanceof ForkdError && e.code === 'invalid_argument',
  );
});

test('request schemas: defaults filled, limits and unknown fields refused', () => {
  const ops = new Map(compileOperations().map((o) => [o.operationId, o]));
  const create = ops.get('createSandboxes')!.body!;
  const body: Record<string, unknown> = { snapshot_tag: 'base' };
  assert.equal(create(body), true);
  assert.deepEqual(body, { snapshot_tag: 'base', n: 1, per_child_netns: false });
  for (const bad of [
    { snapshot_tag: 'b', n: 0 },
    { snapshot_tag: 'b', n: 1001 },
    { snapshot_tag: 'b', x: 1 },
  ])
    assert.equal(create(bad), false, JSON.stringify(bad));
  assert.match(describeErrors('body', (create({ snapshot_tag: 'b', x: 1 }), create.errors)), /unknown field "x"/);
  // Limits and egress: ranges from the cgroup code; the egress shape from its schema (CIDRs
  // themselves are checked by the manager, with messages that say what is wrong).
  for (const good of [
    { snapshot_tag: 'b', cpu_limit: 0.5, pids_limit: 64 },
    { snapshot_tag: 'b', per_child_netns: true, egress: 'allow' },
    { snapshot_tag: 'b', per_child_netns: true, egress: { allow: ['10.0.0.1/8'] } },
  ])
    assert.equal(create(good), true, JSON.stringify(good));
  const why = (b: Record<string, unknown>): string => (
    create({ snapshot_tag: 'b', ...b }),
    describeErrors('body', create.errors)
  );
  assert.match(why({ cpu_limit: 0 }), /body\.cpu_limit must be >= 0\.01/);
  assert.match(why({ cpu_limit: 1025 }), /body\.cpu_limit must be <= 1024/);
  assert.match(why({ pids_limit: 15 }), /body\.pids_limit must be >= 16/);
  assert.match(why({ pids_limit: 16.5 }), /body\.pids_limit must be integer/);
  assert.match(why({ egress: { allow: 'x' } }), /^body\.egress\.allow must be array$/);
  assert.match(why({ egress: { allow: [1] } }), /^body\.egress\.allow\.0 must be string$/);
  for (const egress of ['open', { deny: [] }, 5, null, { allow: [], x: 1 }])
    assert.match(why({ egress }), /^body\.egress must be "allow", "deny" or \{"allow": \["a\.b\.c\.d\/n", \.\.\.\]\}/);
  const snap = ops.get('createSnapshot')!.body!;
  const s: Record<string, unknown> = { tag: 't' };
  assert.equal(snap(s), true);
  assert.equal(s.boot_wait_secs, 60);
  assert.equal(snap({ tag: 't', boot_wait_secs: 61 }), false);
  assert.equal(
    ops.size,
    Object.values(OPENAPI_DOCUMENT.paths).flatMap((p) => Object.keys(p).filter((k) => k !== 'parameters')).length,
  );
});

test('metrics: Prometheus text with escaped labels', async () => {
  const m = new Metrics({
    snapshots: () => Promise.resolve({ ready: 2 }),
    sandboxes: () => ({ running: 3 }),
    activeSandboxes: () => 3,
    branchesInFlight: () => 0,
    branchConcurrencyCap: () => 7,
    buildInfo: () => ({ version: '1"2\\3' }),
  });
  m.httpRequests.inc({ route: '/v1/sandboxes', method: 'GET', status: '200' });
  m.spawnLatency.observe(0.3);
  const text = await m.render();
  assert.match(text, /^forkd_snapshots\{status="ready"\} 2$/m);
  assert.match(text, /^forkd_branch_concurrency_cap 7$/m);
  assert.match(text, /^forkd_build_info\{version="1\\"2\\\\3"\} 1$/m);
  assert.match(text, /^forkd_spawn_latency_seconds_bucket\{le="0.25"\} 0$/m);
  assert.match(text, /^forkd_spawn_latency_seconds_bucket\{le="0.5"\} 1$/m);
  assert.match(text, /^forkd_spawn_latency_seconds_count 1$/m);
  assert.match(text, /^forkd_auth_failures_total 0$/m);
});

test('TLS suites: forward-secret AEAD only', () => {
  for (const suite of TLS_CIPHERS.split(':')) {
    assert.match(suite, /^(TLS_|ECDHE-)/, `${suite}: forward secrecy`);
    assert.match(suite, /(GCM|CHACHA20-POLY1305|CHACHA20_POLY1305)/, `${suite}: AEAD`);
  }
});

test('controller config: flags win over the environment, numbers are checked', () => {
  const cfg = loadControllerConfig({ bind: '127.0.0.1:1', branchConcurrency: '8' });
  assert.equal(cfg.bind, '127.0.0.1:1');
  assert.equal(cfg.branchConcurrency, 8);
  assert.equal(cfg.maxSandboxes, 1000);
  assert.equal(cfg.killOnExit, false);
  assert.equal(cfg.parkedVmms, 0, 'no parked VMMs unless asked');
  assert.equal(loadControllerConfig({ parkedVmms: '4' }).parkedVmms, 4);
  for (const bad of ['-1', '65', '2.5', 'x'])
    assert.throws(() => loadControllerConfig({ parkedVmms: bad }), /--parked-vmms/, bad);
  for (const bad of ['0', '-1', '1.5', 'x', ''])
    assert.throws(() => loadControllerConfig({ branchConcurrency: bad }), /--branch-concurrency/, bad);
  assert.equal(cfg.defaultEgress, 'deny');
  assert.equal(loadControllerConfig({ defaultEgress: 'allow' }).defaultEgress, 'allow');
  for (const bad of ['ALLOW', 'open', '10.0.0.0/8', ''])
    assert.throws(
      () => loadControllerConfig({ defaultEgress: bad }),
      /--default-egress must be "allow" or "deny"/,
      bad,
    );
});

test('docs/openapi.json is the document the daemon serves', async () => {
  const { readFile } = await import('node:fs/promises');
  const committed = JSON.parse(
    await readFile(new URL('../../../docs/openapi.json', import.meta.url), 'utf8'),
  ) as unknown;
  assert.deepEqual(
    committed,
    JSON.parse(JSON.stringify(OPENAPI_DOCUMENT)),
    'regenerate it: npm run build && node --input-type=module -e "import {OPENAPI_DOCUMENT as d} from \'./dist/src/api/openapi.js\'; process.stdout.write(JSON.stringify(d, null, 2))" > docs/openapi.json && npx prettier --write docs/openapi.json',
  );
});
