// `forkd sandbox cp LOCAL ID:/path` (upload) and `forkd sandbox cp ID:/path LOCAL` (download);
// `-` is stdin/stdout. Prints one line (size, sha256 on upload) on stderr.
import { readFile, writeFile } from 'node:fs/promises';
import { ForkdError } from '../../../lib/errors.js';
import { Sandbox } from 'forkd';
import { EXIT_OK, type Command } from '../../command.js';
import { openController } from '../../daemon.js';
import { clientFlags, parseFlags } from '../../flags.js';

/** File data moves in one call: a longer deadline than a plain call. */
const CP_TIMEOUT_SECS = 120;

/** `sb-xxxxxxxxxxxxxxxx:/abs/path` → its parts; anything else is a local path. */
export function parseRemote(arg: string): { id: string; path: string } | undefined {
  const m = /^(sb-[a-z2-7]{16}):(\/.*)$/.exec(arg);
  return m ? { id: m[1]!, path: m[2]! } : undefined;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

const FLAGS = {
  mode: { type: 'string', value: 'OCTAL', default: '644', help: 'mode of an uploaded file' },
  ...clientFlags(CP_TIMEOUT_SECS),
} as const;

export const sandboxCpCommand: Command = {
  name: 'sandbox cp',
  group: 'sandboxes',
  modes: 'daemon',
  summary: 'Copy a file into (LOCAL ID:/path) or out of (ID:/path LOCAL) a sandbox',
  usage: ['sandbox cp SRC DST [flags]   (one side is ID:/absolute/path; - is stdin/stdout)'],
  flags: FLAGS,
  examples: [
    'forkd sandbox cp data.csv sb-abcdefghijklmnop:/root/data.csv',
    'forkd sandbox cp sb-abcdefghijklmnop:/root/out.json - | jq .',
  ],
  notes: ['Files are written atomically in the guest; at most 256 MiB.'],
  async run(argv, ctx) {
    const { values, positionals } = parseFlags(argv, FLAGS, { positionals: true });
    const [src, dst, ...extra] = positionals;
    if (src === undefined || dst === undefined || extra.length > 0)
      throw new ForkdError('invalid_argument', `usage: forkd ${ctx.name} SRC DST (one of them ID:/absolute/path)`);
    const from = parseRemote(src);
    const to = parseRemote(dst);
    if ((from === undefined) === (to === undefined))
      throw new ForkdError('invalid_argument', `exactly one of ${src} and ${dst} must be ID:/absolute/path`);
    if (values.mode !== undefined && !/^[0-7]{3,4}$/.test(values.mode))
      throw new ForkdError('invalid_argument', `--mode must be octal like 644, got ${JSON.stringify(values.mode)}`);
    const controller = await openController(values, CP_TIMEOUT_SECS);
    if (to) {
      const data = src === '-' ? await readStdin() : await readLocal(src);
      const sb = await Sandbox.connect(to.id, { controller });
      const r = await sb.files.write(to.path, data, values.mode ? { mode: parseInt(values.mode, 8) } : {});
      ctx.err(`${src} -> ${to.id}:${r.path} (${r.size} bytes, sha256 ${r.sha256})\n`);
    } else if (from) {
      const sb = await Sandbox.connect(from.id, { controller });
      const data = await sb.files.read(from.path, { format: 'bytes' });
      if (dst === '-') process.stdout.write(data);
      else {
        await writeFile(dst, data);
        ctx.err(`${from.id}:${from.path} -> ${dst} (${data.length} bytes)\n`);
      }
    }
    return EXIT_OK;
  },
};

async function readLocal(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw new ForkdError('invalid_argument', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
}
