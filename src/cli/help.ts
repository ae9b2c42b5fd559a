// `forkd --help` (commands by group, the mode rule, the old names) and `forkd <command> --help`
// (usage, what it does, every flag with its default, examples), both built from the registry.
import type { Command, CommandGroup } from './command.js';
import { DEFAULT_URL } from 'forkd';
import { wrapText } from './args.js';
import { MODE_RULE } from './daemon.js';
import { flagLines, HELP_WIDTH } from './flags.js';

export interface Alias {
  /** The old words, as typed after `forkd` ("images", "snapshot info"). */
  name: string;
  /** The command it runs. */
  target: string;
  /** The mode the old name always had, kept whatever --url/FORKD_URL say. */
  pinnedMode?: 'local' | 'daemon';
  /** Shown in the deprecation note when the new form is more than the target's name. */
  use?: string;
}

const GROUPS: Record<CommandGroup, string> = {
  host: 'this host',
  snapshots: 'snapshots',
  sandboxes: 'sandboxes',
  packs: 'packs (a snapshot as one portable .forkd.tar.zst file; always on this host)',
  tools: 'tools',
};

export function rootHelp(commands: readonly Command[], aliases: readonly Alias[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const sections = (Object.keys(GROUPS) as CommandGroup[]).map((g) =>
    [
      `${GROUPS[g]}:`,
      ...commands.filter((c) => c.group === g).map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    ].join('\n'),
  );
  const aw = Math.max(...aliases.map((a) => a.name.length));
  const old = aliases.map((a) => `  forkd ${a.name.padEnd(aw)}  -> forkd ${a.use ?? a.target}`);
  return [
    'forkd: microVM sandboxes that fork in milliseconds',
    '',
    'usage: forkd <command> [flags]          forkd <command> --help: its flags and an example',
    '',
    sections.join('\n\n'),
    '',
    ...MODE_RULE.flatMap((p) => [...wrapText(p, HELP_WIDTH), '']),
    'Old names still work for now and print a note on stderr when they succeed:',
    ...old,
    '',
  ].join('\n');
}

export function commandHelp(c: Command): string {
  const usage = c.usage.map((u, i) => `${i === 0 ? 'usage: ' : '       '}forkd ${u}`);
  const mode =
    c.modes === 'both'
      ? 'Works on this host, or in the daemon when --url or FORKD_URL is set.'
      : c.modes === 'daemon'
        ? `Daemon only (sandboxes outlive a command only there): --url, else FORKD_URL, else ${DEFAULT_URL}.`
        : 'Works on this host.';
  return [
    ...usage,
    '',
    `${c.summary}.`,
    mode,
    ...(c.notes ?? []).flatMap((n) => ['', ...wrapText(n, HELP_WIDTH)]),
    '',
    ...flagLines(c.flags),
    '',
    'examples:',
    ...c.examples.map((e) => `  ${e}`),
    '',
  ].join('\n');
}

/** `forkd snapshot` / `forkd sandbox --help`: the verbs of one noun. */
export function nounHelp(noun: string, commands: readonly Command[]): string {
  const verbs = commands.filter((c) => c.name.startsWith(`${noun} `));
  const width = Math.max(...verbs.map((c) => c.name.length));
  return [
    `usage: forkd ${noun} <${verbs.map((c) => c.name.slice(noun.length + 1)).join('|')}> [flags]`,
    '',
    ...verbs.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    `Run "forkd ${noun} <verb> --help" for its flags and an example.`,
    '',
  ].join('\n');
}
