// `forkd image build`: build a guest image (kernel + initramfs [+ root disk with packages]).
import { parseArgs } from 'node:util';
import { loadLocalConfig } from '../../lib/config.js';
import { ForkdError } from '../../lib/errors.js';
import { assertTag } from '../../lib/tag.js';
import { buildImage } from '../../image/build.js';
import { listFlag } from '../args.js';
import { createProgress } from '../progress.js';
import { EXIT_OK, type Command } from '../command.js';

export const imageCommand: Command = {
  name: 'image',
  summary: 'Build a guest image: forkd image build [--name default] [--runtime node] [--packages python3-numpy,...]',
  usage:
    'image build [--name NAME] [--runtime node] [--packages PKG,...] [--python-preload MOD,...] [--force] [--data-dir DIR] [--json]',
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    if (sub !== 'build')
      throw new ForkdError(
        'invalid_argument',
        `unknown image subcommand ${JSON.stringify(sub ?? '')}; use: forkd image build`,
      );
    const { values } = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: false,
      options: {
        name: { type: 'string', default: 'default' },
        packages: { type: 'string', multiple: true },
        runtime: { type: 'string', multiple: true },
        'python-preload': { type: 'string', multiple: true },
        force: { type: 'boolean', default: false },
        'data-dir': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    const name = assertTag(values.name, 'image name');
    const config = loadLocalConfig({ dataDir: values['data-dir'] });
    const progress = createProgress(ctx);
    const preload = values['python-preload'] === undefined ? undefined : listFlag(values['python-preload']);
    const manifest = await buildImage({
      dataDir: config.dataDir,
      name,
      packages: listFlag(values.packages),
      runtimes: listFlag(values.runtime),
      force: values.force,
      onProgress: (m) => progress.step(m),
      ...(preload ? { pythonPreload: preload } : {}),
    });
    progress.done(`image ${manifest.name} ready`);
    if (values.json) ctx.out(`${JSON.stringify(manifest, null, 2)}\n`);
    else
      ctx.out(
        `image ${manifest.name}  id=${manifest.id}  kernel=${manifest.kernel.release}  packages=${manifest.packages.join(',') || '-'}  runtimes=${manifest.runtimes.join(',') || '-'}\n`,
      );
    return EXIT_OK;
  },
};
