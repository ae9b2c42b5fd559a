// `forkd image build`: build a guest image (kernel + initramfs [+ root disk with packages]).
import { loadLocalConfig } from '../../lib/config.js';
import { assertTag } from '../../lib/tag.js';
import { buildImage } from '../../image/build.js';
import { listFlag } from '../args.js';
import { createProgress } from '../progress.js';
import { EXIT_OK, type Command } from '../command.js';
import { DATA_DIR_FLAG, JSON_FLAG, parseFlags } from '../flags.js';

const FLAGS = {
  name: { type: 'string', value: 'NAME', default: 'default', help: 'name of the image' },
  packages: {
    type: 'string',
    value: 'PKG,...',
    multiple: true,
    help: 'Debian packages for a root disk (built with mmdebstrap); none: an initramfs-only image',
  },
  runtime: {
    type: 'string',
    value: 'NAME,...',
    multiple: true,
    help: 'language runtimes beside busybox: node adds Node.js and the JS eval worker (default: none)',
  },
  'python-preload': {
    type: 'string',
    value: 'MOD,...',
    multiple: true,
    help: "modules the guest's warm Python worker imports",
  },
  force: { type: 'boolean', help: 'rebuild even when the inputs did not change' },
  'data-dir': DATA_DIR_FLAG,
  json: JSON_FLAG,
} as const;

export const imageBuildCommand: Command = {
  name: 'image build',
  group: 'host',
  modes: 'host',
  summary: 'Build a guest image: kernel, initramfs, --runtime node, and with --packages a Debian root disk',
  usage: ['image build [--name NAME] [--runtime node] [--packages PKG,...] [flags]'],
  flags: FLAGS,
  examples: [
    'forkd image build --runtime node',
    'forkd image build --name numpy --packages python3-numpy --python-preload numpy',
  ],
  notes: ['Builds are cached by their inputs: the image id is their hash.'],
  async run(argv, ctx) {
    const { values } = parseFlags(argv, FLAGS);
    const name = assertTag(values.name ?? 'default', 'image name');
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
