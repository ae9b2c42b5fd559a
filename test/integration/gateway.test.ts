// The gateway against real node daemons on loopback (127.0.0.2-4, empty data dirs, no guest
// booted): merged listings, 404s and validation, bearer tokens both ways, a snapshot moved to
// another node as a verified pack when placement needs it there, routing by the node key in
// sandbox ids (also from a freshly restarted gateway: no state carried over), a node killed
// with SIGKILL marked down within interval x down-after + timeout with its sandboxes listed as
// lost, and up again once it answers. Every answer is checked against the OpenAPI document.
import { strict as assert } from 'node:assert';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { api, errorCode, selfSigned, startDaemon, type DaemonProcess } from '../helpers/controller.js';
import { writeFakeSnapshot } from '../helpers/fake-snapshot.js';
import { testCore } from '../helpers/env.js';
import { qemuVersionString } from '../../src/core/host-facts.js';
import { nodeKeyOf, nodeKeyOfId } from '../../src/lib/ids.js';

const TOKEN = 'gateway-test-token-0123456789abcdef';
const INTERVAL_MS = 300;
const TIMEOUT_MS = 300;
const DOWN_AFTER = 2;
/** What the gateway promises: interval x down-after + timeout, plus scheduling slack. */
const DETECT_BOUND_MS = INTERVAL_MS * DOWN_AFTER + TIMEOUT_MS + 1500;

interface Node {
  name: string;
  host: string;
  dataDir: string;
  port: number;
  proc: DaemonProcess;
  url: string;
}

async function waitFor<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

void describe('gateway over node daemons on loopback', () => {
  let root = '';
  let tokenFile = '';
  const nodes: Node[] = [];
  let gw: DaemonProcess | undefined;
  let host = { qemuVersion: '', accel: 'tcg' as 'kvm' | 'tcg' };

  const startNode = async (name: string, host: string, dataDir: string, port = 0, max = 1000): Promise<Node> => {
    const proc = await startDaemon([
      'serve',
      '--bind',
      `${host}:${port}`,
      '--data-dir',
      dataDir,
      '--audit-log',
      join(root, `${name}.audit.log`),
      '--token-file',
      tokenFile,
      '--node-name',
      name,
      '--max-sandboxes',
      String(max),
    ]);
    return { name, host, dataDir, port: Number(proc.address.split(':').pop()), proc, url: proc.baseUrl };
  };
  const startGw = (): Promise<DaemonProcess> =>
    startDaemon([
      'gateway',
      '--bind',
      '127.0.0.1:0',
      '--nodes',
      nodes.map((n) => n.url).join(','),
      '--token-file',
      tokenFile,
      '--audit-log',
      join(root, 'gateway.audit.log'),
      '--health-interval-ms',
      String(INTERVAL_MS),
      '--health-timeout-ms',
      String(TIMEOUT_MS),
      '--down-after',
      String(DOWN_AFTER),
      '--placement-k',
      '3',
    ]);
  const g = (method: string, path: string, json?: unknown) =>
    api(gw!.baseUrl, method, path, { token: TOKEN, ...(json === undefined ? {} : { json }) });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'forkd-gw-'));
    await chmod(root, 0o755); // the daemon refuses a data dir the VM user cannot traverse
    tokenFile = join(root, 'token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    const facts = (await testCore()).facts;
    host = { qemuVersion: qemuVersionString(facts.qemu), accel: facts.accel.accel };
    for (const [i, name] of ['node-a', 'node-b', 'node-c'].entries()) {
      const dataDir = join(root, name);
      await mkdir(dataDir, { mode: 0o755 });
      // node-a holds the snapshot but has room for one sandbox only.
      if (name === 'node-a') await writeFakeSnapshot(dataDir, 'fk1', host);
      nodes.push(await startNode(name, `127.0.0.${i + 2}`, dataDir, 0, name === 'node-a' ? 1 : 1000));
    }
    gw = await startGw();
  });
  after(async () => {
    await gw?.stop();
    for (const n of nodes) await n.proc.stop();
    await rm(root, { recursive: true, force: true });
  });

  void it('answers like a node: auth, validation, version, merged empty listings, 404s', async () => {
    assert.equal((await api(gw!.baseUrl, 'GET', '/v1/sandboxes')).status, 401);
    assert.equal((await api(gw!.baseUrl, 'GET', '/healthz')).status, 200);
    const v = await g('GET', '/version');
    assert.equal(v.status, 200);
    assert.equal((v.json as { qemu: string }).qemu, host.qemuVersion);
    assert.deepEqual((await g('GET', '/v1/sandboxes')).json, { sandboxes: [] });
    const missing = await g('GET', '/v1/sandboxes/sb-aaaaaaaaaaaaaaaa');
    assert.equal(missing.status, 404);
    assert.equal(errorCode(missing), 'not_found');
    const bad = await g('GET', '/v1/sandboxes/..');
    assert.equal(errorCode(bad), 'invalid_id');
    const noSnap = await g('POST', '/v1/sandboxes', { snapshot_tag: 'nope' });
    assert.equal(noSnap.status, 404);
    const node = await g('GET', '/v1/node');
    assert.equal(node.status, 404, 'the gateway is not a node');
    const caps = await g('GET', '/v1/capabilities');
    assert.equal(caps.status, 200);
  });

  void it('merges the snapshots of every node, saying which hold each', async () => {
    const list = await g('GET', '/v1/snapshots');
    const snaps = (list.json as { snapshots: { tag: string; status: string; nodes: string[] }[] }).snapshots;
    assert.deepEqual(
      snaps.map((s) => [s.tag, s.status, s.nodes]),
      [['fk1', 'ready', ['node-a']]],
    );
    const one = await g('GET', '/v1/snapshots/fk1');
    assert.deepEqual((one.json as { nodes: string[] }).nodes, ['node-a']);
    assert.equal((await g('GET', '/v1/snapshots/nope')).status, 404);
  });

  let failedIds: string[] = [];
  let target: Node | undefined;
  void it('a spawn that node-a has no room for goes to another node, which first pulls the snapshot as a verified pack', async () => {
    const r = await g('POST', '/v1/sandboxes', { snapshot_tag: 'fk1', n: 2 });
    // The fake snapshot cannot really restore: the node answers with its restore error. What
    // matters here is where it went and that the snapshot travelled.
    assert.ok(r.status >= 400, r.text);
    const snap = await g('GET', '/v1/snapshots/fk1');
    const holders = (snap.json as { nodes: string[] }).nodes.sort();
    assert.equal(holders.length, 2, `fk1 now on two nodes: ${holders.join(',')}`);
    assert.equal(holders[0], 'node-a');
    target = nodes.find((n) => n.name === holders[1])!;
    // The copy on the target is byte-identical: its pack has the same sha256.
    const a = await api(nodes[0]!.url, 'GET', '/v1/snapshots/fk1/pack', { token: TOKEN });
    const b = await api(target.url, 'GET', '/v1/snapshots/fk1/pack', { token: TOKEN });
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.match(String(a.headers['x-forkd-pack-sha256']), /^[0-9a-f]{64}$/);
    // The failed sandboxes are kept on the target, with ids carrying its node key.
    const list = await g('GET', '/v1/sandboxes');
    const rows = (list.json as { sandboxes: { id: string; node: string; state: string }[] }).sandboxes;
    assert.equal(rows.length, 2, list.text);
    for (const s of rows) {
      assert.equal(s.node, target.name);
      assert.equal(s.state, 'failed');
      assert.equal(nodeKeyOfId(s.id), nodeKeyOf(target.name));
    }
    failedIds = rows.map((s) => s.id);
  });

  void it('routes by id alone: a restarted gateway finds the sandbox on its node with no state carried over', async () => {
    await gw!.stop();
    gw = await startGw();
    const one = await g('GET', `/v1/sandboxes/${failedIds[0]!}`);
    assert.equal(one.status, 200, one.text);
    assert.equal((one.json as { node: string }).node, target!.name);
    const exec = await g('POST', `/v1/sandboxes/${failedIds[0]!}/exec`, { cmd: 'true' });
    assert.equal(exec.status, 409, 'the node itself answers: the sandbox is not running');
    assert.equal(errorCode(exec), 'invalid_state');
  });

  void it('kill -9 of a node: marked down within the stated bound, its sandboxes listed as lost; up again when it answers', async () => {
    const t0 = Date.now();
    target!.proc.proc.kill('SIGKILL');
    await target!.proc.stop();
    const detectedMs = await waitFor('the node to be marked down', DETECT_BOUND_MS + 5000, async () => {
      const m = await g('GET', '/metrics');
      return m.text.includes(`forkd_gateway_node_up{node="${target!.name}"} 0`) ? Date.now() - t0 : undefined;
    });
    assert.ok(detectedMs <= DETECT_BOUND_MS, `down after ${detectedMs} ms (bound ${DETECT_BOUND_MS} ms)`);
    const list = await g('GET', '/v1/sandboxes');
    const rows = (list.json as { sandboxes: { id: string; state: string; reason: string }[] }).sandboxes;
    assert.deepEqual(
      rows.map((s) => s.state),
      ['lost', 'lost'],
    );
    assert.match(rows[0]!.reason, /unreachable/);
    const lost = await g('GET', '/v1/sandboxes?state=lost');
    assert.equal((lost.json as { sandboxes: unknown[] }).sandboxes.length, 2);
    const one = await g('GET', `/v1/sandboxes/${failedIds[0]!}`);
    assert.equal((one.json as { state: string }).state, 'lost');
    const exec = await g('POST', `/v1/sandboxes/${failedIds[0]!}/exec`, { cmd: 'true' });
    assert.equal(exec.status, 503);
    assert.equal(errorCode(exec), 'unavailable');
    // Snapshots now come from the nodes left.
    const snap = await g('GET', '/v1/snapshots/fk1');
    assert.deepEqual((snap.json as { nodes: string[] }).nodes, ['node-a']);

    // Back on the same address: up again at its first good check, its sandboxes as they are.
    const again = await startNode(target!.name, target!.host, target!.dataDir, target!.port);
    nodes[nodes.indexOf(target!)] = again;
    await waitFor('the node to be up again', DETECT_BOUND_MS + 5000, async () => {
      const m = await g('GET', '/metrics');
      return m.text.includes(`forkd_gateway_node_up{node="${target!.name}"} 1`) ? true : undefined;
    });
    const back = await g('GET', `/v1/sandboxes/${failedIds[0]!}`);
    assert.equal((back.json as { state: string }).state, 'failed');
    for (const id of failedIds) assert.equal((await g('DELETE', `/v1/sandboxes/${id}`)).status, 204);
    assert.deepEqual((await g('GET', '/v1/sandboxes')).json, { sandboxes: [] });
  });
});

void describe('gateway to nodes over TLS', () => {
  let root = '';
  let node: DaemonProcess | undefined;
  const gws: DaemonProcess[] = [];
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'forkd-gw-tls-'));
    await chmod(root, 0o755); // the daemon refuses a data dir the VM user cannot traverse
    const tokenFile = join(root, 'token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    const { cert, key } = await selfSigned(root);
    await mkdir(join(root, 'data'), { mode: 0o755 });
    node = await startDaemon([
      'serve',
      '--bind',
      '127.0.0.2:0',
      '--data-dir',
      join(root, 'data'),
      '--audit-log',
      join(root, 'node.audit.log'),
      '--token-file',
      tokenFile,
      '--tls-cert',
      cert,
      '--tls-key',
      key,
      '--node-name',
      'tls-node',
    ]);
    const other = await selfSigned(await mkdtemp(join(root, 'other-')));
    for (const [i, ca] of [cert, other.cert].entries())
      gws.push(
        await startDaemon([
          'gateway',
          '--bind',
          '127.0.0.1:0',
          // The certificate names 127.0.0.1 and localhost, not 127.0.0.2: check it as localhost.
          '--nodes',
          `https://${node.address}`,
          '--node-ca',
          ca,
          '--node-servername',
          'localhost',
          '--token-file',
          tokenFile,
          '--audit-log',
          join(root, `gw-${i}.audit.log`),
          '--health-interval-ms',
          String(INTERVAL_MS),
        ]),
      );
  });
  after(async () => {
    for (const g of gws) await g.stop();
    await node?.stop();
    await rm(root, { recursive: true, force: true });
  });

  void it('reaches a node whose certificate its CA signed, and not one it cannot verify', async () => {
    const ok = await waitFor('the TLS node to be up', 10_000, async () => {
      const m = await api(gws[0]!.baseUrl, 'GET', '/metrics', { token: TOKEN });
      return m.text.includes('forkd_gateway_node_up{node="tls-node"} 1') ? true : undefined;
    });
    assert.ok(ok);
    const list = await api(gws[0]!.baseUrl, 'GET', '/v1/sandboxes', { token: TOKEN });
    assert.equal(list.status, 200);
    // The other gateway trusts another CA: the node never counts as up, and it says why.
    await new Promise((r) => setTimeout(r, INTERVAL_MS * 3));
    const refused = await api(gws[1]!.baseUrl, 'GET', '/version', { token: TOKEN });
    assert.equal(refused.status, 503);
    assert.equal(errorCode(refused), 'unavailable');
    // A listing with no node up is still an answer: nothing known, nothing lost.
    assert.deepEqual((await api(gws[1]!.baseUrl, 'GET', '/v1/sandboxes', { token: TOKEN })).json, { sandboxes: [] });
  });

  void it('refuses plain http to a node that is not on loopback', async () => {
    const r = await startDaemon([
      'gateway',
      '--bind',
      '127.0.0.1:0',
      '--nodes',
      'http://192.0.2.1:8889',
      '--audit-log',
      join(root, 'x.log'),
    ]).then(
      (d) => d.stop().then(() => 'started'),
      (e: unknown) => String(e),
    );
    assert.match(r, /refusing plain http to non-loopback node/);
  });
});
