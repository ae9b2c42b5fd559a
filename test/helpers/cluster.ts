// A small forkd cluster on one machine, for the many-hosts test and the multinode benchmark:
// N node daemons as N "hosts" (each in its own network namespace with its own address from
// test-hosts.ts, or on loopback 127.0.0.2.. when namespaces cannot be made), each with its own
// data dir (the `default` test image linked in), TLS and the bearer token; and gateways in the
// root namespace that discover the nodes from a static list. `stop()` deletes what is left
// through the nodes themselves and removes everything.
import { chmod, link, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { messageOf } from '../../src/lib/errors.js';
import { api, selfSigned, startDaemon, type ApiResponse, type DaemonProcess } from './controller.js';
import { TEST_DATA_DIR } from './env.js';
import { makeTestHosts, type TestHosts } from './test-hosts.js';

export interface ClusterHost {
  name: string;
  address: string;
  prefix: string[];
  dataDir: string;
  port: number;
  proc: DaemonProcess;
  url: string;
}

export interface ClusterOptions {
  nodes: number;
  gateways: number;
  token: string;
  maxSandboxes: number;
  health: { intervalMs: number; timeoutMs: number; downAfter: number };
  placementK: number;
}

export interface Cluster {
  root: string;
  hosts: ClusterHost[];
  gateways: DaemonProcess[];
  /** Whether the hosts are network namespaces (else loopback addresses). */
  namespaces: boolean;
  /** Straight to a node (from the root namespace, over TLS). */
  nodeApi(h: ClusterHost, method: string, path: string, json?: unknown): Promise<ApiResponse>;
  gw(i: number, method: string, path: string, json?: unknown): Promise<ApiResponse>;
  /** The gateway's view of a node, from its /metrics. */
  nodeUp(i: number, name: string, up: boolean): Promise<boolean>;
  /** Starts node `i` again on its address, port and data dir (after a kill). */
  restartHost(i: number): Promise<ClusterHost>;
  /** Stops gateway `i` and starts a new one with the same arguments (nothing carried over). */
  restartGateway(i: number): Promise<DaemonProcess>;
  stop(): Promise<void>;
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const root = await mkdtemp(join(tmpdir(), 'forkd-multi-'));
  await chmod(root, 0o755); // QEMU (the VM user) traverses to the snapshot files
  const tokenFile = join(root, 'token');
  await writeFile(tokenFile, opts.token, { mode: 0o600 });
  let testHosts: TestHosts | undefined;
  let places: { address: string; prefix: string[] }[];
  try {
    testHosts = await makeTestHosts(opts.nodes);
    places = testHosts.hosts;
  } catch (err) {
    process.stderr.write(`cluster: no network namespaces (${messageOf(err)}); hosts on loopback instead\n`);
    places = Array.from({ length: opts.nodes }, (_, i) => ({ address: `127.0.0.${i + 2}`, prefix: [] }));
  }
  const pair = await selfSigned(
    root,
    places.map((p) => p.address),
  );
  const tls = { ...pair, ca: await readFile(pair.cert) };
  const hosts: ClusterHost[] = [];
  const gateways: DaemonProcess[] = [];

  const startHost = async (
    name: string,
    address: string,
    prefix: string[],
    dataDir: string,
    port = 0,
  ): Promise<ClusterHost> => {
    const proc = await startDaemon(
      [
        'serve',
        '--bind',
        `${address}:${port}`,
        '--data-dir',
        dataDir,
        '--audit-log',
        join(root, `${name}.audit.log`),
        '--token-file',
        tokenFile,
        '--tls-cert',
        tls.cert,
        '--tls-key',
        tls.key,
        '--node-name',
        name,
        '--max-sandboxes',
        String(opts.maxSandboxes),
      ],
      { prefix },
    );
    const p = Number(proc.address.split(':').pop());
    return { name, address, prefix, dataDir, port: p, proc, url: `https://${address}:${p}` };
  };
  const nodeApi = (h: ClusterHost, method: string, path: string, json?: unknown): Promise<ApiResponse> =>
    api(h.url, method, path, { token: opts.token, tls: { ca: tls.ca }, ...(json === undefined ? {} : { json }) });
  const gw = (i: number, method: string, path: string, json?: unknown): Promise<ApiResponse> =>
    api(gateways[i]!.baseUrl, method, path, { token: opts.token, ...(json === undefined ? {} : { json }) });

  const stop = async (): Promise<void> => {
    for (const h of hosts) {
      if (h.proc.proc.exitCode !== null || h.proc.proc.signalCode !== null) continue;
      const list = await nodeApi(h, 'GET', '/v1/sandboxes').catch(() => undefined);
      for (const s of (list?.json as { sandboxes?: { id: string }[] } | undefined)?.sandboxes ?? [])
        await nodeApi(h, 'DELETE', `/v1/sandboxes/${s.id}`).catch(() => undefined);
    }
    for (const g of gateways) await g.stop();
    for (const h of hosts) await h.proc.stop();
    await testHosts?.remove();
    await rm(root, { recursive: true, force: true });
  };

  try {
    for (let i = 0; i < opts.nodes; i++) {
      const name = `node-${i + 1}`;
      const dataDir = join(root, name);
      const img = join(dataDir, 'images', 'default');
      await mkdir(img, { recursive: true, mode: 0o755 });
      const src = join(TEST_DATA_DIR, 'images', 'default');
      for (const f of await readdir(src)) await link(join(src, f), join(img, f));
      hosts.push(await startHost(name, places[i]!.address, places[i]!.prefix, dataDir));
    }
    for (let i = 0; i < opts.gateways; i++) gateways.push(await startGateway(i));
  } catch (err) {
    await stop().catch(() => undefined); // the start-up error is the one to report
    throw err;
  }

  async function startGateway(i: number): Promise<DaemonProcess> {
    return startDaemon([
      'gateway',
      '--bind',
      '127.0.0.1:0',
      '--nodes',
      hosts.map((h) => h.url).join(','),
      // The test certificate names localhost: check the nodes' against that name.
      '--node-ca',
      tls.cert,
      '--node-servername',
      'localhost',
      '--token-file',
      tokenFile,
      '--audit-log',
      join(root, `gateway-${i}.audit.log`),
      '--health-interval-ms',
      String(opts.health.intervalMs),
      '--health-timeout-ms',
      String(opts.health.timeoutMs),
      '--down-after',
      String(opts.health.downAfter),
      '--placement-k',
      String(opts.placementK),
    ]);
  }

  return {
    root,
    hosts,
    gateways,
    namespaces: testHosts !== undefined,
    nodeApi,
    gw,
    nodeUp: async (i, name, up) =>
      (await gw(i, 'GET', '/metrics')).text.includes(`forkd_gateway_node_up{node="${name}"} ${up ? 1 : 0}`),
    restartGateway: async (i) => {
      await gateways[i]!.stop();
      gateways[i] = await startGateway(i);
      return gateways[i];
    },
    restartHost: async (i) => {
      const h = hosts[i]!;
      hosts[i] = await startHost(h.name, h.address, h.prefix, h.dataDir, h.port);
      return hosts[i];
    },
    stop,
  };
}
