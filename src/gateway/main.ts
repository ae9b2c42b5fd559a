// `forkd-controller gateway`: argv → config → startGateway; signals and exit codes as `serve`.
import { parseArgs } from 'node:util';
import { loadGatewayConfig } from '../lib/config.js';
import { messageOf } from '../lib/errors.js';
import { StartupRefusal } from '../api/posture.js';
import { startGateway, type Gateway } from './gateway.js';

export const GATEWAY_USAGE = `usage: forkd-controller gateway [options]

A stateless gateway speaking the node daemons' REST API v1: places spawns on the best of K
nodes, moves snapshots between nodes as verified packs, routes sandbox calls by id.

  --bind ADDR               IP:PORT or unix:/path (FORKD_GATEWAY_BIND, default 127.0.0.1:8890)
  --nodes URL[,URL...]      node daemons, http(s)://host:port (FORKD_GATEWAY_NODES)
  --nodes-dns NAME:PORT     discover node daemons from the A records of NAME (FORKD_GATEWAY_NODES_DNS)
  --node-scheme http|https  scheme for discovered nodes (FORKD_GATEWAY_NODE_SCHEME, default https)
  --node-ca FILE            PEM CA of the nodes' certificates (FORKD_NODE_CA)
  --node-servername NAME    name the nodes' certificates are checked against (FORKD_NODE_SERVERNAME,
                            default: the --nodes-dns name)
  --token-file FILE         clients' bearer token (FORKD_TOKEN_FILE); required off loopback
  --node-token-file FILE    token sent to the nodes (FORKD_NODE_TOKEN_FILE, default: --token-file)
  --tls-cert FILE --tls-key FILE   serve HTTPS (FORKD_TLS_CERT, FORKD_TLS_KEY)
  --insecure-no-tls         plain HTTP off loopback, to clients and to nodes (trusted networks only)
  --audit-log FILE          (FORKD_AUDIT_LOG, default /var/log/forkd/gateway-audit.log)
  --health-interval-ms N    health check period per node (default 2000)
  --health-timeout-ms N     deadline of each check (default 1000)
  --down-after N            failed checks in a row that mark a node down (default 3)
  --placement-k K           nodes drawn per spawn, best one wins (default 2)
`;

export async function gatewayMain(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        bind: { type: 'string' },
        nodes: { type: 'string' },
        'nodes-dns': { type: 'string' },
        'node-scheme': { type: 'string' },
        'node-ca': { type: 'string' },
        'node-servername': { type: 'string' },
        'token-file': { type: 'string' },
        'node-token-file': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'insecure-no-tls': { type: 'boolean' },
        'audit-log': { type: 'string' },
        'health-interval-ms': { type: 'string' },
        'health-timeout-ms': { type: 'string' },
        'down-after': { type: 'string' },
        'placement-k': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`forkd-controller gateway: ${messageOf(err)}\n${GATEWAY_USAGE}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(GATEWAY_USAGE);
    return 0;
  }
  let gateway: Gateway | undefined;
  let finish!: (code: number) => void;
  const exitCode = new Promise<number>((resolve) => (finish = resolve));
  let signals = 0;
  const stop = (): void => {
    if (!gateway || ++signals > 1) return finish(1);
    gateway.shutdown().then(
      () => finish(0),
      () => finish(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => gateway?.reopenAuditLog());
  try {
    gateway = await startGateway(
      loadGatewayConfig({
        bind: v.bind,
        nodes: v.nodes,
        nodesDns: v['nodes-dns'],
        nodeScheme: v['node-scheme'],
        nodeCa: v['node-ca'],
        nodeServername: v['node-servername'],
        tokenFile: v['token-file'],
        nodeTokenFile: v['node-token-file'],
        tlsCert: v['tls-cert'],
        tlsKey: v['tls-key'],
        insecureNoTls: v['insecure-no-tls'],
        auditLog: v['audit-log'],
        healthIntervalMs: v['health-interval-ms'],
        healthTimeoutMs: v['health-timeout-ms'],
        downAfter: v['down-after'],
        placementK: v['placement-k'],
      }),
    );
  } catch (err) {
    const lines = err instanceof StartupRefusal ? err.problems : [messageOf(err).split('\n')[0]!];
    for (const line of lines) process.stderr.write(`forkd-controller gateway: refusing to start: ${line}\n`);
    return 2;
  }
  return exitCode;
}
