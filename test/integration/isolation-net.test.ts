// Per-sandbox network namespaces with real QEMU children and real traffic, only between
// addresses on this machine in namespaces this test creates (test/helpers/test-net.ts: HTTP
// servers at 198.51.100.10 and 203.0.113.10 behind their own veths, under a safety-net table
// that would drop anything a sandbox sent anywhere else; its counter shows it never had to).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { connect, createServer, type Server } from 'node:net';
import { stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { createSnapshot } from '../../src/core/snapshot-create.js';
import { loadSnapshot, removeSnapshot } from '../../src/core/snapshot-store.js';
import { restoreChild, type LoadedSnapshot, type Sandbox } from '../../src/core/sandbox.js';
import type { CoreContext } from '../../src/core/context.js';
import type { EgressPolicy } from '../../src/host/nftables.js';
import { BRIDGE, BRIDGE_ADDRESS, ensureHostNetwork, removeHostNetwork } from '../../src/host/bridge.js';
import { AddressClaims } from '../../src/host/net-addr.js';
import { validateIsolationOptions } from '../../src/core/isolation.js';
import { ensureImage, testCore, uniqueTag } from '../helpers/env.js';
import { findLeaks } from '../helpers/leaks.js';
import {
  HTTP_PORT,
  SERVERS,
  fetchArgv,
  nftCounter,
  startInNetns,
  startTestNet,
  type TestNet,
} from '../helpers/test-net.js';

const pexec = promisify(execFile);
const LISTENER_JS = `require('net').createServer((c)=>{console.log('conn '+c.remoteAddress);c.end()}).listen(Number(process.argv[1]),'0.0.0.0',()=>console.log('listening'))`;

/** GET `url` from inside the guest: the body on success, undefined on failure. */
async function fetch(child: Sandbox, url: string, timeoutSecs: number): Promise<string | undefined> {
  const r = await child.agent.exec({ argv: fetchArgv(url, timeoutSecs), timeoutMs: 120_000 });
  if (!('exitCode' in r)) throw new Error('unexpected background exec');
  return r.exitCode === 0 ? r.stdout.toString('utf8').trim() : undefined;
}

/** The host's own addresses that are neither loopback nor ours (e.g. its LAN address). */
async function hostLanAddresses(): Promise<string[]> {
  const { stdout } = await pexec('ip', ['-4', '-o', 'addr', 'show']);
  return stdout
    .split('\n')
    .map((l) => /^\d+:\s+(\S+)\s+inet\s+([\d.]+)\//.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[1] !== 'lo' && m[1] !== BRIDGE && !m[1]!.startsWith('fk-'))
    .map((m) => m[2]!);
}

describe('sandbox network namespaces and egress policy', () => {
  let core: CoreContext;
  let snap: LoadedSnapshot;
  let net: TestNet | undefined;
  const tag = uniqueTag('it-isonet');
  const live: Sandbox[] = [];
  const procs: ChildProcess[] = [];
  let daemon: Server | undefined;
  let daemonConnections = 0;

  async function child(egress: EgressPolicy): Promise<Sandbox> {
    const c = await restoreChild(core, snap, {
      isolation: validateIsolationOptions({ network: { egress } }, 'deny'),
      readyTimeoutMs: 120_000,
    });
    live.push(c);
    return c;
  }

  before(async () => {
    await ensureImage('default');
    core = await testCore();
    net = await startTestNet();
    await createSnapshot(core, { tag, image: 'default', memMiB: 512, vcpus: 1, warmup: [], bootTimeoutMs: 180_000 });
    snap = await loadSnapshot(core, tag);
    await ensureHostNetwork();
    // The "daemon": a TCP port on every host address (0.0.0.0 covers 127.0.0.1 and the bridge).
    daemon = createServer((c) => {
      daemonConnections++;
      c.end();
    });
    await new Promise<void>((r) => daemon!.listen(0, '0.0.0.0', r));
  });

  after(async () => {
    await Promise.allSettled(live.map((c) => c.dispose()));
    for (const p of procs) p.kill('SIGKILL');
    daemon?.close();
    await net?.stop();
    await removeSnapshot(core.paths, tag).catch(() => undefined);
    await removeHostNetwork().catch(() => undefined);
    assert.deepEqual(await findLeaks(), []);
  });

  test('two children of one snapshot, both 10.42.0.2, each fetch from the test servers', async () => {
    const [a, b] = [await child('allow'), await child('allow')];
    assert.notEqual(a.isolation!.netns, b.isolation!.netns);
    assert.notEqual(a.isolation!.bridgeAddress, b.isolation!.bridgeAddress);
    for (const c of [a, b]) {
      const addr = await c.agent.exec({ shell: 'ip -4 -o addr show dev eth0', timeoutMs: 30_000 });
      assert.match(addr.stdout.toString(), /inet 10\.42\.0\.2\/24/);
      assert.equal(await fetch(c, `http://${SERVERS[0].addr}:${HTTP_PORT}/`, 30), 'srv1');
      assert.equal(await fetch(c, `http://${SERVERS[1].addr}:${HTTP_PORT}/`, 30), 'srv2');
    }
    assert.equal(await net!.escaped(), 0, 'nothing headed anywhere else');
  });

  test('egress deny: nothing leaves the guest', async () => {
    const c = await child('deny');
    const denied0 = await nftCounter(c.isolation!.netns, 'forkd', 'denied');
    // Both at once: each can only end in its 5 s timeout, so waiting for them in turn buys nothing.
    const got = await Promise.all(SERVERS.map((srv) => fetch(c, `http://${srv.addr}:${HTTP_PORT}/`, 5)));
    assert.deepEqual(got, [undefined, undefined]);
    assert.ok((await nftCounter(c.isolation!.netns, 'forkd', 'denied')) > denied0, 'dropped by the policy');
  });

  test('egress allow-list: only the listed CIDR answers', async () => {
    const c = await child({ allow: ['198.51.100.0/24'] });
    assert.equal(await fetch(c, `http://${SERVERS[0].addr}:${HTTP_PORT}/`, 30), 'srv1');
    assert.equal(await fetch(c, `http://${SERVERS[1].addr}:${HTTP_PORT}/`, 5), undefined);
    assert.ok((await nftCounter(c.isolation!.netns, 'forkd', 'denied')) > 0);
  });

  test('always blocked, even with egress allow: metadata address, the host (daemon port), other sandboxes', async () => {
    const [a, b] = [await child('allow'), await child('allow')];
    const nsA = a.isolation!.netns!;
    const blocked0 = await nftCounter(nsA, 'forkd', 'blocked');
    const escaped0 = await net!.escaped();

    // Link-local metadata: dropped inside the sandbox's own namespace, never reaching the host.
    assert.equal(await fetch(a, 'http://169.254.169.254/latest/meta-data/', 5), undefined);
    const blocked1 = await nftCounter(nsA, 'forkd', 'blocked');
    assert.ok(blocked1 > blocked0, 'dropped by the always-blocked set');

    // The daemon's port on the bridge address, the host's LAN addresses and the namespace's
    // gateway. (The guest's 127.0.0.1 is its own loopback: the host's is not addressable.)
    const port = (daemon!.address() as { port: number }).port;
    const lan = await hostLanAddresses();
    const toHost0 = await nftCounter(undefined, 'forkd', 'to_host');
    // All at once (each can only end in its timeout); daemonConnections below proves none got through.
    const targets = [BRIDGE_ADDRESS, '10.42.0.1', ...lan];
    const got = await Promise.all(targets.map((target) => fetch(a, `http://${target}:${port}/`, 5)));
    targets.forEach((target, i) => assert.equal(got[i], undefined, `host port via ${target}`));
    assert.equal(daemonConnections, 0, 'no guest connection reached the host port');
    if (lan.length > 0) {
      // A LAN address is not in the always-blocked set: the host's own input rule drops it.
      assert.ok((await nftCounter(undefined, 'forkd', 'to_host')) > toHost0, 'dropped by the host table');
    }
    for (const host of ['127.0.0.1', BRIDGE_ADDRESS]) {
      await new Promise<void>((resolve, reject) => {
        const s = connect(port, host, () => s.end());
        s.once('close', () => resolve());
        s.once('error', reject);
      });
    }
    assert.equal(daemonConnections, 2, 'the port itself answers on 127.0.0.1 and the bridge address');

    // Another sandbox: a listener inside b's namespace on its bridge address.
    const listener = await startInNetns(b.isolation!.netns!, LISTENER_JS, '9000');
    procs.push(listener.proc);
    assert.equal(await fetch(a, `http://${b.isolation!.bridgeAddress}:9000/`, 5), undefined);
    assert.doesNotMatch(listener.out(), /conn /);
    assert.ok((await nftCounter(nsA, 'forkd', 'blocked')) > blocked1);
    assert.equal(await net!.escaped(), escaped0, 'nothing left through the host');
    listener.proc.kill('SIGKILL');
  });

  test('dispose removes the namespace, veth, tap, nftables table, address claim and cgroup', async () => {
    const c = await child('allow');
    const ns = c.isolation!.netns!;
    const tap = await pexec('ip', ['-n', ns, '-o', 'link', 'show', 'tap0']);
    assert.match(tap.stdout, /tap0/);
    const tables = await pexec('nsenter', [`--net=/run/netns/${ns}`, 'nft', 'list', 'tables']);
    assert.match(tables.stdout, /table inet forkd/);
    assert.equal(await new AddressClaims().addressOf(ns), c.isolation!.bridgeAddress);
    await c.dispose();
    await assert.rejects(stat(`/run/netns/${ns}`), /ENOENT/);
    await assert.rejects(stat(`/sys/class/net/${ns}`), /ENOENT/);
    assert.equal(await new AddressClaims().addressOf(ns), undefined);
    for (const dir of c.isolation!.cgroup.dirs) await assert.rejects(stat(dir.path), /ENOENT/);
    assert.ok(!(await new AddressClaims().holders()).includes(ns));
  });
});
