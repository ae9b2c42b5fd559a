// `forkd snapshot create|ls|info|rm`: snapshots in the daemon (`forkd snapshot --tag T` is
// the local builder; snapshot.ts hands these four subcommands here).
import { parseArgs } from 'node:util';
import { ForkdError } from '../../lib/errors.js';
import { formatAge, formatMiB, intFlag } from '../args.js';
import { createProgress } from '../progress.js';
import { EXIT_OK, type CliContext } from '../command.js';
import { CLIENT_FLAGS, CLIENT_USAGE, daemonCommand, openController, table } from './daemon-client.js';

export const REMOTE_SNAPSHOT_SUBCOMMANDS = ['create', 'ls', 'info', 'rm'] as const;

export const REMOTE_SNAPSHOT_USAGE = [
  `snapshot create --tag TAG [--image default] [--mem-mib 512] [--vcpus 1] [--warmup CMD]... [--no-wait] [--json] ${CLIENT_USAGE}`,
  `snapshot ls [--json] ${CLIENT_USAGE}`,
  `snapshot info TAG [--json] ${CLIENT_USAGE}`,
  `snapshot rm TAG [--cascade | --force] ${CLIENT_USAGE}`,
].join('\n       forkd ');

export function runRemoteSnapshot(sub: string, argv: string[], ctx: CliContext): Promise<number> {
  const name = `snapshot ${sub}`;
  return daemonCommand(name, ctx, async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: sub === 'info' || sub === 'rm',
      options: {
        json: { type: 'boolean', default: false },
        ...CLIENT_FLAGS,
        ...(sub === 'create'
          ? {
              tag: { type: 'string' },
              image: { type: 'string' },
              'mem-mib': { type: 'string' },
              vcpus: { type: 'string' },
              warmup: { type: 'string', multiple: true },
              'boot-wait-secs': { type: 'string' },
              'no-wait': { type: 'boolean', default: false },
            }
          : {}),
        ...(sub === 'rm'
          ? { cascade: { type: 'boolean', default: false }, force: { type: 'boolean', default: false } }
          : {}),
      } as const,
    });
    const v = values as Record<string, string | string[] | boolean | undefined>;
    const str = (k: string): string | undefined => (typeof v[k] === 'string' ? v[k] : undefined);
    const c = await openController(values);
    if (sub === 'ls') {
      const list = await c.snapshots.list();
      if (values.json) ctx.out(`${JSON.stringify({ snapshots: list }, null, 2)}\n`);
      else
        ctx.out(
          table([
            ['TAG', 'STATUS', 'IMAGE', 'MEM', 'DISK', 'PARENT', 'IN USE', 'CREATED'],
            ...list.map((s) => [
              s.tag,
              s.status,
              s.image ?? '-',
              s.mem_mib === null ? '-' : `${s.mem_mib} MiB`,
              formatMiB(s.disk_bytes),
              s.parent_tag ?? '-',
              String(s.in_use_by.length),
              formatAge(new Date(s.created_at)),
            ]),
          ]),
        );
      return EXIT_OK;
    }
    if (sub === 'info' || sub === 'rm') {
      const [tag, ...extra] = positionals;
      if (tag === undefined || extra.length > 0)
        throw new ForkdError('invalid_argument', `usage: forkd snapshot ${sub} TAG`);
      if (sub === 'info') {
        const s = await c.snapshots.get(tag);
        ctx.out(
          values.json
            ? `${JSON.stringify(s, null, 2)}\n`
            : table(Object.entries(s).map(([k, val]) => [`${k}:`, fmt(val)])),
        );
        return EXIT_OK;
      }
      const deleted = await c.snapshots.delete(tag, { cascade: v.cascade === true, force: v.force === true });
      ctx.out(
        values.json ? `${JSON.stringify({ deleted }, null, 2)}\n` : deleted.map((t) => `deleted ${t}\n`).join(''),
      );
      return EXIT_OK;
    }
    // create
    const tag = str('tag');
    if (tag === undefined) throw new ForkdError('invalid_argument', '--tag is required');
    const progress = createProgress(ctx, !values.json || ctx.interactive);
    progress.step(`building snapshot ${tag} in the daemon`);
    let s = await c.snapshots.create({
      tag,
      ...(str('image') !== undefined ? { image: str('image') } : {}),
      ...(str('mem-mib') !== undefined
        ? { mem_mib: intFlag('mem-mib', str('mem-mib'), 512, { min: 128, max: 16_384 }) }
        : {}),
      ...(str('vcpus') !== undefined ? { vcpus: intFlag('vcpus', str('vcpus'), 1, { min: 1, max: 16 }) } : {}),
      ...(Array.isArray(v.warmup) ? { warmup: v.warmup } : {}),
      ...(str('boot-wait-secs') !== undefined
        ? { boot_wait_secs: intFlag('boot-wait-secs', str('boot-wait-secs'), 60, { min: 1, max: 60 }) }
        : {}),
    });
    if (v['no-wait'] !== true) {
      s = await c.snapshots.wait(tag, { onProgress: (x) => progress.step(`snapshot ${tag}: ${x.status}`) });
      progress.done(`snapshot ${tag} ready`);
    }
    ctx.out(values.json ? `${JSON.stringify(s, null, 2)}\n` : `${s.tag} ${s.status}\n`);
    return EXIT_OK;
  });
}

function fmt(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v)) return v.length === 0 ? '-' : v.map((x) => JSON.stringify(x)).join(', ');
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
