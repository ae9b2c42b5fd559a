// Many hosts, with real guests, kept small: three node daemons as three "hosts" — each in its
// own network namespace with its own address (198.18.42.11-13, made by the test; loopback
// 127.0.0.2-4 if namespaces cannot be made) and its own data dir, --max-sandboxes 2, TLS and
// the bearer token — and two gateways in the root namespace.
//   - a snapshot is built on node-1 only; 6 spawns through gateway A fill node-1, then the
//     gateway moves the snapshot (verified pack) to node-2 and node-3 and fills them: 2 each;
//     4 more rounds of 6 (deleted in between, alternating gateways) spread the same: 30 spawns;
//   - exec through either gateway reaches the right guest (it answers its own id as hostname);
//   - a restarted gateway (a new process, nothing carried over) routes them the same;
//   - kill -9 of node-3: both gateways mark it down within the stated bound, list its
//     sandboxes as lost, and new spawns go to the two nodes left;
//   - node-3 restarted re-adopts its sandboxes (they outlived the daemon) and they are deleted;
//   - the SDK through a gateway: create, streamed exec, files; BRANCH lands on the sandbox's
//     node and a spawn from the branch is placed there; the CLI (spawn, exec, ls, kill) and the
//     MCP server (spawn, exec, kill) through a gateway.
// Skips, saying why, when the test image cannot be built (e.g. the guest agent mid-rewrite).
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { messageOf } from '../../src/lib/errors.js';
import { startCluster, type Cluster, type ClusterHost } from '../helpers/cluster.js';
import { Sandbox } from 'forkd';
import { CLI, ensureImage, runCli } from '../helpers/env.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { callMcpTool } from '../helpers/mcp.js';

const TOKEN = 'multinode-test-token-0123456789abcdef';
const INTERVAL_MS = 500;
const TIMEOUT_MS = 500;
const DOWN_AFTER = 2;
/** The stated detection bound: interval x down-after + timeout (+ 1.5 s of scheduling slack). */
const DETECT_BOUND_MS = INTERVAL_MS * DOWN_AFTER + TIMEOUT_MS + 1500;

interface Sb {
  id: string;
  node: string;
  state: string;
}

let skipReason: string | undefined;

void describe('many hosts: three node daemons, two gateways, real guests', { timeout: 900_000 }, () => {
  let cluster: Cluster | undefined;
  let hosts: ClusterHost[] = [];
  let gateways: Cluster['gateways'] = [];
  let spawned: Sb[] = [];
  const nodeApi = (h: ClusterHost, method: string, path: string, json?: unknown) =>
    cluster!.nodeApi(h, method, path, json);
  const gw = (i: number, method: string, path: string, json?: unknown) => cluster!.gw(i, method, path, json);
  const nodeUp = (i: number, name: string, up: boolean) => cluster!.nodeUp(i, name, up);

  before(async () => {
    try {
      await ensureImage('default');
    } catch (err) {
      skipReason = `the default test image cannot be built here: ${messageOf(err).split('\n')[0]}`;
      return;
    }
    cluster = await startCluster({
      nodes: 3,
      gateways: 2,
      token: TOKEN,
      maxSandboxes: 2,
      health: { intervalMs: INTERVAL_MS, timeoutMs: TIMEOUT_MS, downAfter: DOWN_AFTER },
      placementK: 3,
    });
    ({ hosts, gateways } = cluster);
  });
  after(async () => {
    await cluster?.stop();
  });

  void it('builds a snapshot on node-1 only', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const r = await nodeApi(hosts[0]!, 'POST', '/v1/snapshots', { tag: 'mn-base', image: 'default', mem_mib: 256 });
    assert.equal(r.status, 202, r.text);
    for (;;) {
      const s = await nodeApi(hosts[0]!, 'GET', '/v1/snapshots/mn-base');
      const status = (s.json as { status: string; error: string | null }).status;
      if (status === 'ready') break;
      assert.notEqual(status, 'failed', s.text);
      await new Promise((r) => setTimeout(r, 500));
    }
    // Both gateways see it, on node-1 alone.
    for (const i of [0, 1]) {
      const seen = await gw(i, 'GET', '/v1/snapshots/mn-base');
      assert.deepEqual((seen.json as { nodes: string[] }).nodes, ['node-1']);
    }
  });

  void it('30 spawns through the gateways, 5 rounds of 6 each spread 2-2-2; the snapshot pulled (verified) to the other nodes', async (t) => {
    if (skipReason) return t.skip(skipReason);
    // --max-sandboxes 2 per node: a round fills the three nodes, and is deleted before the
    // next (the last round stays for the tests below). Round 1 pulls the snapshot to nodes 2, 3.
    for (let round = 0; round < 5; round++) {
      if (round > 0) {
        for (const s of spawned) assert.equal((await gw(round % 2, 'DELETE', `/v1/sandboxes/${s.id}`)).status, 204);
        spawned = [];
      }
      for (let i = 0; i < 6; i++) {
        const r = await gw(round % 2, 'POST', '/v1/sandboxes', { snapshot_tag: 'mn-base' });
        assert.equal(r.status, 201, r.text);
        const sb = (r.json as { sandboxes: Sb[] }).sandboxes[0]!;
        assert.equal(sb.state, 'running');
        spawned.push(sb);
      }
      const per = new Map<string, number>();
      for (const s of spawned) per.set(s.node, (per.get(s.node) ?? 0) + 1);
      assert.deepEqual(
        [...per.entries()].sort(),
        [
          ['node-1', 2],
          ['node-2', 2],
          ['node-3', 2],
        ],
        `round ${round + 1}`,
      );
    }
    const snap = await gw(1, 'GET', '/v1/snapshots/mn-base');
    assert.deepEqual((snap.json as { nodes: string[] }).nodes.sort(), ['node-1', 'node-2', 'node-3']);
    // The receiving node checked the pack's sha256 and every file's digest before publishing it.
    const [a, b] = await Promise.all([0, 1].map((i) => nodeApi(hosts[i]!, 'GET', '/v1/snapshots/mn-base')));
    assert.equal(
      (a!.json as { logical_bytes: number }).logical_bytes,
      (b!.json as { logical_bytes: number }).logical_bytes,
    );
  });

  void it('exec through either gateway reaches the right guest', async (t) => {
    if (skipReason) return t.skip(skipReason);
    for (const [i, s] of spawned.entries()) {
      const r = await gw(i % 2, 'POST', `/v1/sandboxes/${s.id}/exec`, { cmd: 'hostname' });
      assert.equal(r.status, 200, r.text);
      assert.equal((r.json as { stdout: string }).stdout.trim(), s.id);
      assert.equal(r.headers['x-forkd-node'], s.node);
    }
  });

  void it('a restarted gateway routes the existing sandboxes by id alone, no state carried over', async (t) => {
    if (skipReason) return t.skip(skipReason);
    await cluster!.restartGateway(0);
    const t0 = Date.now();
    for (const name of ['node-1', 'node-2', 'node-3'])
      while (!(await nodeUp(0, name, true))) {
        assert.ok(Date.now() - t0 < DETECT_BOUND_MS + 10_000, `the new gateway does not see ${name} up`);
        await new Promise((r) => setTimeout(r, 50));
      }
    for (const s of spawned) {
      const r = await gw(0, 'POST', `/v1/sandboxes/${s.id}/exec`, { cmd: 'hostname' });
      assert.equal(r.status, 200, r.text);
      assert.equal((r.json as { stdout: string }).stdout.trim(), s.id);
      assert.equal(r.headers['x-forkd-node'], s.node);
    }
  });

  void it('kill -9 of node-3: down within the bound on both gateways, its sandboxes lost, new spawns on the two left', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const h3 = hosts[2]!;
    const t0 = Date.now();
    h3.proc.proc.kill('SIGKILL');
    await h3.proc.stop();
    for (const i of [0, 1]) {
      while (!(await nodeUp(i, 'node-3', false))) {
        assert.ok(Date.now() - t0 < DETECT_BOUND_MS + 10_000, 'not marked down');
        await new Promise((r) => setTimeout(r, 50));
      }
      const ms = Date.now() - t0;
      t.diagnostic(`gateway ${i}: node-3 marked down ${ms} ms after kill -9 (bound ${DETECT_BOUND_MS} ms)`);
      assert.ok(ms <= DETECT_BOUND_MS, `gateway ${i}: node-3 marked down after ${ms} ms (bound ${DETECT_BOUND_MS})`);
    }
    for (const i of [0, 1]) {
      const list = await gw(i, 'GET', '/v1/sandboxes');
      const rows = (list.json as { sandboxes: Sb[] }).sandboxes;
      const lost = rows.filter((s) => s.state === 'lost').map((s) => s.id);
      assert.deepEqual(
        lost.sort(),
        spawned
          .filter((s) => s.node === 'node-3')
          .map((s) => s.id)
          .sort(),
      );
      assert.equal(rows.filter((s) => s.state === 'running').length, 4);
    }
    // Make room on node-1 and node-2, then spawn twice: never on node-3.
    for (const node of ['node-1', 'node-2']) {
      const victim = spawned.find((s) => s.node === node)!;
      assert.equal((await gw(1, 'DELETE', `/v1/sandboxes/${victim.id}`)).status, 204);
      spawned = spawned.filter((s) => s !== victim);
    }
    for (let i = 0; i < 2; i++) {
      const r = await gw(1, 'POST', '/v1/sandboxes', { snapshot_tag: 'mn-base' });
      assert.equal(r.status, 201, r.text);
      const sb = (r.json as { sandboxes: Sb[] }).sandboxes[0]!;
      assert.notEqual(sb.node, 'node-3');
      spawned.push(sb);
    }
    // A third has nowhere to go: the two left are full.
    const full = await gw(0, 'POST', '/v1/sandboxes', { snapshot_tag: 'mn-base' });
    assert.equal(full.status, 503, full.text);
  });

  void it('node-3 back: up again, its sandboxes (which outlived its daemon) running and reachable', async (t) => {
    if (skipReason) return t.skip(skipReason);
    await cluster!.restartHost(2);
    const t0 = Date.now();
    for (const i of [0, 1])
      while (!(await nodeUp(i, 'node-3', true))) {
        assert.ok(Date.now() - t0 < DETECT_BOUND_MS + 10_000, 'node-3 not marked up again');
        await new Promise((r) => setTimeout(r, 50));
      }
    for (const s of spawned.filter((x) => x.node === 'node-3')) {
      const r = await gw(0, 'POST', `/v1/sandboxes/${s.id}/exec`, { cmd: 'hostname' });
      assert.equal(r.status, 200, r.text);
      assert.equal((r.json as { stdout: string }).stdout.trim(), s.id);
    }
    for (const s of spawned) assert.equal((await gw(1, 'DELETE', `/v1/sandboxes/${s.id}`)).status, 204);
    assert.deepEqual((await gw(0, 'GET', '/v1/sandboxes')).json, { sandboxes: [] });
  });

  void it('the SDK works through a gateway unchanged: create, streamed exec, files, setTimeout, BRANCH, kill', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const sb = await Sandbox.create('mn-base', { url: gateways[1]!.baseUrl, token: TOKEN });
    try {
      const out = await sb.commands.run('hostname');
      assert.equal(out.stdout.trim(), sb.sandboxId);
      await sb.files.write('/tmp/x.txt', 'through the gateway');
      assert.equal(await sb.files.read('/tmp/x.txt'), 'through the gateway');
      // The stat, mkdir, rename and ttl routes are forwarded to the sandbox's node too.
      assert.equal(await sb.files.makeDir('/tmp/d'), true);
      await sb.files.write('/tmp/y.txt', 'y');
      assert.equal((await sb.files.rename('/tmp/y.txt', '/tmp/d/y.txt')).path, '/tmp/d/y.txt');
      assert.deepEqual([await sb.files.exists('/tmp/y.txt'), await sb.files.exists('/tmp/d/y.txt')], [false, true]);
      await sb.setTimeout(900_000);
      assert.ok((await sb.getInfo()).endAt!.getTime() > Date.now() + 800_000);
      // BRANCH through gateway B lands on the sandbox's node; gateway A spawns from it there.
      const br = await gw(1, 'POST', `/v1/sandboxes/${sb.sandboxId}/branch`, { tag: 'mn-branch' });
      assert.equal(br.status, 201, br.text);
      const node = (await gw(0, 'GET', `/v1/sandboxes/${sb.sandboxId}`)).json as Sb;
      const snap = await gw(0, 'GET', '/v1/snapshots/mn-branch');
      assert.deepEqual((snap.json as { nodes: string[] }).nodes, [node.node]);
      const child = await gw(0, 'POST', '/v1/sandboxes', { snapshot_tag: 'mn-branch' });
      assert.equal(child.status, 201, child.text);
      const c = (child.json as { sandboxes: Sb[] }).sandboxes[0]!;
      assert.equal(c.node, node.node, 'placed where the snapshot is');
      const seen = await gw(1, 'POST', `/v1/sandboxes/${c.id}/exec`, { cmd: 'cat /tmp/x.txt' });
      assert.equal((seen.json as { stdout: string }).stdout, 'through the gateway');
      assert.equal((await gw(1, 'DELETE', `/v1/sandboxes/${c.id}`)).status, 204);
    } finally {
      await sb.kill();
    }
    assert.deepEqual((await gw(0, 'GET', '/v1/sandboxes')).json, { sandboxes: [] });
  });

  void it('the CLI works through a gateway unchanged: spawn, exec, ls, kill', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const env = { FORKD_URL: gateways[0]!.baseUrl, FORKD_TOKEN: TOKEN };
    const spawnOut = await runCli(['spawn', '--tag', 'mn-base', '--json'], { env });
    assert.equal(spawnOut.code, 0, spawnOut.stderr);
    const id = /sb-[a-z2-7]{16}/.exec(spawnOut.stdout)?.[0];
    assert.ok(id, spawnOut.stdout);
    const exec = await runCli(['exec', id, '--', 'hostname'], { env: { ...env, FORKD_URL: gateways[1]!.baseUrl } });
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout.trim(), id);
    const ls = await runCli(['ls', '--json'], { env });
    assert.ok(ls.stdout.includes(id), ls.stdout);
    const kill = await runCli(['kill', id], { env });
    assert.equal(kill.code, 0, kill.stderr);
    assert.deepEqual((await gw(0, 'GET', '/v1/sandboxes')).json, { sandboxes: [] });
  });

  void it('the MCP server works through a gateway unchanged: spawn, exec, kill', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, 'mcp'],
      env: { ...(process.env as Record<string, string>), FORKD_URL: gateways[1]!.baseUrl, FORKD_TOKEN: TOKEN },
      stderr: 'pipe',
    });
    const client = new Client({ name: 'forkd-multinode-test', version: '0.0.0' });
    await client.connect(transport);
    try {
      const call = (name: string, args: Record<string, unknown>) => callMcpTool(client, name, args);
      const spawned = (await call('spawn_sandboxes', { snapshot: 'mn-base', n: 1 })) as { sandboxes: Sb[] };
      const id = spawned.sandboxes[0]!.id;
      const ex = (await call('exec_command', { id, args: ['hostname'] })) as { stdout: string };
      assert.equal(ex.stdout.trim(), id);
      await call('kill_sandbox', { id });
    } finally {
      await client.close();
    }
    assert.deepEqual((await gw(0, 'GET', '/v1/sandboxes')).json, { sandboxes: [] });
  });
});
