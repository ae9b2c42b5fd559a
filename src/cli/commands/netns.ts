// `forkd netns cleanup`: remove sandbox networking left behind by a crash: `fk-` namespaces no
// process is inside (a live sandbox's is kept unless --force), stray `fk-` host links, stale
// bridge-address claims, and — once no sandbox namespace remains — the bridge and the host's
// nftables table.
import { parseArgs } from 'node:util';
import { ForkdError } from '../../lib/errors.js';
import { isRoot } from '../../host/users.js';
import { cleanupAll, type NetCleanupReport } from '../../host/netns.js';
import { EXIT_FAILURE, EXIT_OK, type Command } from '../command.js';

function summary(r: NetCleanupReport): string {
  const lines = [
    `removed ${r.namespaces.length} namespace(s)${r.namespaces.length ? `: ${r.namespaces.join(' ')}` : ''}`,
    `removed ${r.links.length} stray link(s)${r.links.length ? `: ${r.links.join(' ')}` : ''}`,
    `released ${r.claims.length} stale address claim(s)`,
    r.inUse.length
      ? `kept ${r.inUse.length} namespace(s) a live process is in (use --force to remove): ${r.inUse.join(' ')}`
      : `bridge ${r.bridge ? 'removed' : 'absent'}, host nftables table ${r.hostTable ? 'removed' : 'absent'}`,
    ...r.errors.map((e) => `error: ${e}`),
  ];
  return `${lines.join('\n')}\n`;
}

export const netnsCommand: Command = {
  name: 'netns',
  summary: 'Sandbox networking maintenance: "netns cleanup" removes leftover namespaces, links and rules',
  usage: 'netns cleanup [--force] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: { json: { type: 'boolean', default: false }, force: { type: 'boolean', default: false } },
    });
    if (positionals.length !== 1 || positionals[0] !== 'cleanup') {
      throw new ForkdError('invalid_argument', 'usage: forkd netns cleanup [--force] [--json]');
    }
    if (!isRoot()) throw new ForkdError('host_error', 'netns cleanup needs root (network namespaces, nftables)');
    const report = await cleanupAll({ force: values.force });
    ctx.out(values.json ? `${JSON.stringify(report, null, 2)}\n` : summary(report));
    return report.errors.length > 0 ? EXIT_FAILURE : EXIT_OK;
  },
};
