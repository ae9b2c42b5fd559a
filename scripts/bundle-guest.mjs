// Bundles the in-guest JavaScript (src/guest) into a self-contained ESM file that the image
// builder copies into images built with `--runtime node`. Only Node built-ins are allowed inside
// the guest. The Python worker (src/guest/workers/py-worker.py) is plain Python 3 and ships as is.
//   dist/src/guest/js-worker.mjs    the JavaScript eval worker the native agent starts
import { build } from 'esbuild';

await build({
  entryPoints: ['src/guest/workers/js-worker.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outfile: 'dist/src/guest/js-worker.mjs',
  banner: { js: '// forkd JavaScript eval worker (bundled). Started by the guest agent; frames on fds 3 and 4.' },
  logLevel: 'warning',
});
