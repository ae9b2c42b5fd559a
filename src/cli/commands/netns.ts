// `forkd netns cleanup`: remove sandbox networking left behind by a crash: `fk-` namespaces no
// process is inside (a live sandbox's is kept unless --force), stray `fk-` host links, stale
// bridge-address claims, and — once no sandbox namespace remains — the bridge and the host's
// nftables table.
import { ForkdError } from '../../lib/errors.js';
import { isRoot } from '../../host/users.js';
import { cleanupAll, type NetCleanupReport } from '../../host/netns.js';
import { EXIT_FAILURE, EXIT_OK, type Command } from '../command.js';
import { JSON_FLAG, parseFlags } from '../flags.js';

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

const FLAGS = {
  force: { type: 'boolean', help: 'also remove namespaces a live process is in' },
  json: JSON_FLAG,
} as const;

export const netnsCleanupCommand: Command = {
  name: 'netns cleanup',
  group: 'host',
  modes: 'host',
  summary: 'Remove sandbox networking a crash left behind: namespaces, links, address claims, rules',
  usage: ['netns cleanup [--force] [--json]'],
  flags: FLAGS,
  examples: ['sudo forkd netns cleanup', 'sudo forkd netns cleanup --json'],
  notes: ['Needs root. Exit 1 when something could not be removed (listed as error lines).'],
  async run(argv, ctx) {
    const { values, positionals } = parseFlags(argv, FLAGS, { positionals: true });
    if (positionals.length > 0) {
      throw new ForkdError('invalid_argument', 'usage: forkd netns cleanup [--force] [--json]');
    }
    if (!isRoot()) throw new ForkdError('host_error', 'netns cleanup needs root (network namespaces, nftables)');
    const report = await cleanupAll({ force: values.force });
    ctx.out(values.json ? `${JSON.stringify(report, null, 2)}\n` : summary(report));
    return report.errors.length > 0 ? EXIT_FAILURE : EXIT_OK;
  },
};
