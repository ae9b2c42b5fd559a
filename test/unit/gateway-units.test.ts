// The gateway's pure parts (placement, node URL posture) and its node set against real HTTP
// servers on loopback found through an injected resolver (DNS discovery without a DNS server).
import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { isForkdError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import { NodeClient } from '../../src/gateway/node-client.js';
import { checkNodeUrl, NodeSet } from '../../src/gateway/nodes.js';
import { bestOf, place, placementPool, sample, type Candidate } from '../../src/gateway/placement.js';

const ALL = { memory_limit: true, cpu_limit: true, pids_limit: true, per_child_netns: true };
const c = (id: string, over: Partial<Candidate> = {}): Candidate => ({
  id,
  up: true,
  active: 0,
  max: 10,
  pending: 0,
  availableBytes: 1 << 30,
  snapshots: [],
  features: ALL,
  ...over,
});
const req = { tag: 'py', n: 1, features: [] as string[], k: 2 };

test('placement prefers nodes holding the snapshot, best of K by free share then memory', () => {
  const nodes = [c('a', { snapshots: ['py'], active: 5 }), c('b', { snapshots: ['py'], active: 1 }), c('c')];
  assert.deepEqual(place(nodes, { ...req, k: 3 }), { target: 'b', source: undefined });
  // K = 1 draws one holder at random, never the non-holder.
  for (let i = 0; i < 20; i++) assert.notEqual(place(nodes, { ...req, k: 1 }).target, 'c');
  assert.equal(bestOf([c('x', { availableBytes: 1 }), c('y', { availableBytes: 2 })]).id, 'y');
  assert.equal(bestOf([c('x', { active: 1, max: 2 }), c('y', { active: 5, max: 100 })]).id, 'y', 'share, not count');
  assert.equal(bestOf([c('x', { pending: 9 }), c('y', { active: 1 })]).id, 'y', 'pending spawns count');
});

test('placement pulls to another node when no holder has room, and refuses clearly otherwise', () => {
  const full = c('a', { snapshots: ['py'], active: 10 });
  assert.deepEqual(place([full, c('b'), c('c', { active: 3 })], { ...req, k: 3 }), { target: 'b', source: 'a' });
  const refused = (nodes: Candidate[], code: string, r = req): void =>
    assert.throws(
      () => placementPool(nodes, r),
      (e: unknown) => isForkdError(e) && e.code === code,
    );
  refused([], 'unavailable');
  refused([c('a', { up: false, snapshots: ['py'] })], 'unavailable');
  refused([c('a'), c('b')], 'not_found');
  refused([full], 'busy');
  refused([c('a', { snapshots: ['py'], features: { ...ALL, per_child_netns: false } })], 'feature_unavailable', {
    ...req,
    features: ['per_child_netns'],
  });
  // A node without the feature is never chosen, even holding the snapshot.
  const p = place([c('a', { snapshots: ['py'], features: { ...ALL, per_child_netns: false } }), c('b')], {
    ...req,
    features: ['per_child_netns'],
    k: 2,
  });
  assert.deepEqual(p, { target: 'b', source: 'a' });
  // n counts: room for 1 is not room for 5.
  assert.equal(place([c('a', { snapshots: ['py'], active: 8 }), c('b')], { ...req, n: 5, k: 2 }).target, 'b');
});

test('sample draws K distinct members', () => {
  const pool = ['a', 'b', 'c', 'd'];
  for (let i = 0; i < 20; i++) {
    const s = sample(pool, 2);
    assert.equal(new Set(s).size, 2);
  }
  assert.equal(sample(pool, 10).length, 4);
  assert.deepEqual(sample(pool, 4, () => 0.999).sort(), pool);
});

test('node URLs: plain http only to loopback unless --insecure-no-tls', () => {
  assert.equal(checkNodeUrl('http://127.0.0.2:8889', false), 'http://127.0.0.2:8889');
  assert.equal(checkNodeUrl('https://10.0.0.5:8889/', false), 'https://10.0.0.5:8889');
  assert.equal(checkNodeUrl('http://[::1]:8889', false), 'http://[::1]:8889');
  assert.throws(() => checkNodeUrl('http://10.0.0.5:8889', false), /refusing plain http/);
  assert.equal(checkNodeUrl('http://10.0.0.5:8889', true), 'http://10.0.0.5:8889');
  assert.throws(() => checkNodeUrl('https://10.0.0.5:8889/v1', false), /scheme:\/\/host:port only/);
  assert.throws(() => checkNodeUrl('ftp://x:1', false), /http/);
});

/** A stand-in node daemon: healthz, node and sandboxes, and whether it checks the token. */
function fakeNode(name: string, token: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const json = (status: number, v: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    if (req.url === '/healthz') return json(200, { ok: true });
    if (req.headers.authorization !== `Bearer ${token}`) return json(401, { error: 'no', code: 'unauthorized' });
    if (req.url === '/v1/node')
      return json(200, {
        name,
        key: 'abc',
        version: '0',
        accel: 'tcg',
        qemu: '7.2.0',
        cpus: 2,
        memory: { total_bytes: 1, available_bytes: 1 },
        sandboxes: { active: 0, max: 10 },
        snapshots: [],
        features: {},
      });
    if (req.url === '/v1/sandboxes')
      return json(200, {
        sandboxes: [{ id: 'sb-abcaaaaaaaaaaaaa', snapshot_tag: 't', state: 'running', created_at: 'x', reason: null }],
      });
    return json(404, { error: 'no route', code: 'not_found' });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.5', () => resolve({ server, port: (server.address() as AddressInfo).port })),
  );
}

test('DNS discovery, health checks, down after K failures, up again; inventory kept while down', async () => {
  const token = 'unit-token-0123456789';
  const a = await fakeNode('a', token);
  let ips = ['127.0.0.5'];
  let dnsFails = false;
  const client = new NodeClient({ token });
  const set = new NodeSet(client, {
    dns: { name: 'forkd-nodes.test', port: a.port, scheme: 'http' },
    intervalMs: 100,
    timeoutMs: 200,
    downAfter: 2,
    insecureNoTls: false,
    logger: silentLogger,
    resolve4: (name) => {
      assert.equal(name, 'forkd-nodes.test');
      return dnsFails ? Promise.reject(new Error('SERVFAIL')) : Promise.resolve(ips);
    },
  });
  try {
    await set.ready();
    const wait = async (pred: () => boolean, what: string): Promise<number> => {
      const t0 = Date.now();
      while (!pred()) {
        if (Date.now() - t0 > 5000) throw new Error(`timed out: ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return Date.now() - t0;
    };
    assert.equal(set.up().length, 1);
    const n = set.up()[0]!;
    assert.equal(n.info?.name, 'a');
    assert.equal(n.inventory.length, 1);
    // DNS failing keeps what is known.
    dnsFails = true;
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(set.up().length, 1);
    dnsFails = false;
    // The node goes away: down within interval x downAfter + timeout (+ slack), inventory kept.
    a.server.closeAllConnections();
    await new Promise<void>((r) => a.server.close(() => r()));
    const ms = await wait(() => set.up().length === 0, 'down');
    assert.ok(ms < 100 * 2 + 200 + 600, `down after ${ms} ms`);
    assert.equal(set.all()[0]!.inventory.length, 1, 'last inventory kept for lost listings');
    assert.ok(set.all()[0]!.downSince);
    // Back on the same port: up again.
    await new Promise<void>((r) => a.server.listen(a.port, '127.0.0.5', () => r()));
    await wait(() => set.up().length === 1, 'up again');
    // An address that is not loopback over plain http is refused at discovery.
    ips = ['127.0.0.5', '192.0.2.1'];
    await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(
      set.all().map((x) => x.url),
      [`http://127.0.0.5:${a.port}`],
    );
  } finally {
    set.stop();
    client.close();
    a.server.closeAllConnections();
    a.server.close();
  }
});

test('a node that refuses the gateway token never counts as up', async () => {
  const a = await fakeNode('a', 'the-right-token-0123456789');
  const client = new NodeClient({ token: 'a-wrong-token-0123456789' });
  const set = new NodeSet(client, {
    nodes: [`http://127.0.0.5:${a.port}`],
    intervalMs: 100,
    timeoutMs: 200,
    downAfter: 1,
    insecureNoTls: false,
    logger: silentLogger,
  });
  try {
    await set.ready();
    assert.equal(set.up().length, 0);
    assert.match(set.all()[0]!.lastError ?? '', /node token/);
  } finally {
    set.stop();
    client.close();
    a.server.close();
  }
});
