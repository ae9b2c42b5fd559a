#!/usr/bin/env node
// forkd-controller: the daemon's entry point. Parses argv, loads the config (flags win over
// env vars), starts the daemon (src/api/daemon.ts is the composition root) and owns the
// process: signals, exit codes. Start-up refusals print one line each and exit 2.
import { parseArgs } from 'node:util';
import { loadControllerConfig } from '../lib/config.js';
import { messageOf } from '../lib/errors.js';
import { FORKD_VERSION } from '../lib/version.js';
import { startDaemon, type Daemon } from '../api/daemon.js';
import { StartupRefusal } from '../api/posture.js';

const USAGE = `usage: forkd-controller serve [options]
       forkd-controller gateway [options]   (many hosts: see forkd-controller gateway --help)

  --bind ADDR              IP:PORT, [IPv6]:PORT or unix:/path (FORKD_BIND, default 127.0.0.1:8889)
  --data-dir DIR           images, snapshots, run dirs, forkd.db (FORKD_DATA_DIR, default /var/lib/forkd)
  --token-file FILE        bearer token, mode 0600, >= 16 bytes (FORKD_TOKEN_FILE); required off loopback
  --tls-cert FILE          PEM certificate chain (FORKD_TLS_CERT); with --tls-key
  --tls-key FILE           PEM private key, mode 0600 (FORKD_TLS_KEY); with --tls-cert
  --audit-log FILE         JSON lines (FORKD_AUDIT_LOG, default /var/log/forkd/audit.log); SIGHUP reopens
  --branch-concurrency N   BRANCH operations at once, >= 1 (FORKD_BRANCH_CONCURRENCY, default 4)
  --max-sandboxes N        active sandboxes at most (FORKD_MAX_SANDBOXES, default 1000)
  --parked-vmms K          keep K child QEMUs started per hot snapshot so a spawn only restores
                           (FORKD_PARKED_VMMS, default 0: none; spawns without limits or netns)
  --default-egress POLICY  allow | deny: egress of a per_child_netns sandbox whose spawn names no
                           "egress" (FORKD_DEFAULT_EGRESS, default deny)
  --kill-on-exit           stop every sandbox on SIGTERM/SIGINT (default: they keep running and
                           the next daemon re-adopts them)
  --insecure-no-tls        allow plain HTTP on a non-loopback address (behind a TLS proxy only)
  --e2b-bind ADDR          also serve the E2B-compatible API there (IP:PORT; FORKD_E2B_BIND; off by
                           default): point E2B_API_URL and E2B_SANDBOX_URL at it (docs/E2B.md)
  --node-name NAME         this node's name for a gateway; its 3-character key starts every
                           sandbox id (FORKD_NODE_NAME, default: the host name)
`;

function refuse(lines: string[]): number {
  for (const line of lines) process.stderr.write(`forkd-controller: refusing to start: ${line}\n`);
  return 2;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'gateway') return (await import('../gateway/main.js')).gatewayMain(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        bind: { type: 'string' },
        'data-dir': { type: 'string' },
        'token-file': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'audit-log': { type: 'string' },
        'branch-concurrency': { type: 'string' },
        'max-sandboxes': { type: 'string' },
        'parked-vmms': { type: 'string' },
        'default-egress': { type: 'string' },
        'kill-on-exit': { type: 'boolean' },
        'insecure-no-tls': { type: 'boolean' },
        'node-name': { type: 'string' },
        'e2b-bind': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    process.stderr.write(`forkd-controller: ${messageOf(err)}\n${USAGE}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.version) {
    process.stdout.write(`forkd-controller ${FORKD_VERSION}\n`);
    return 0;
  }
  if (v.help || positionals[0] !== 'serve' || positionals.length > 1) {
    (v.help ? process.stdout : process.stderr).write(USAGE);
    return v.help ? 0 : 2;
  }
  // Signal handlers go in before anything starts: a SIGTERM that arrives while the daemon is
  // still starting (or right after it printed its address) must shut it down cleanly, not
  // kill it with the default action.
  let daemon: Daemon | undefined;
  let pending: NodeJS.Signals | undefined;
  let signals = 0;
  let finish!: (code: number) => void;
  const exitCode = new Promise<number>((resolve) => (finish = resolve));
  const stop = (sig: NodeJS.Signals): void => {
    const d = daemon;
    if (!d) {
      pending ??= sig;
      return;
    }
    if (++signals > 1) {
      d.logger.warn('second signal: exiting without finishing the shutdown', { signal: sig });
      finish(1);
      return;
    }
    d.logger.info('signal received', { signal: sig });
    d.shutdown().then(
      () => finish(0),
      (err: unknown) => {
        d.logger.error('shutdown failed', { error: messageOf(err) });
        finish(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => daemon?.reopenAuditLog());
  try {
    const cfg = loadControllerConfig({
      bind: v.bind,
      dataDir: v['data-dir'],
      tokenFile: v['token-file'],
      tlsCert: v['tls-cert'],
      tlsKey: v['tls-key'],
      auditLog: v['audit-log'],
      branchConcurrency: v['branch-concurrency'],
      maxSandboxes: v['max-sandboxes'],
      parkedVmms: v['parked-vmms'],
      defaultEgress: v['default-egress'],
      killOnExit: v['kill-on-exit'],
      insecureNoTls: v['insecure-no-tls'],
      nodeName: v['node-name'],
      e2bBind: v['e2b-bind'],
    });
    daemon = await startDaemon(cfg);
  } catch (err) {
    return refuse(err instanceof StartupRefusal ? err.problems : [messageOf(err).split('\n')[0]!]);
  }
  if (pending) stop(pending);
  return exitCode;
}

// Exit explicitly: QEMU children left running on purpose must not keep this process alive.
process.exit(await main(process.argv.slice(2)));
