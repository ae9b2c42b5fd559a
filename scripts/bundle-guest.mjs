// Bundles the in-guest agent (src/guest) into one self-contained ESM file that the image
// builder copies into every initramfs. Only Node built-ins are allowed inside the guest.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/guest/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outfile: 'dist/src/guest/forkd-agent.mjs',
  banner: { js: '// forkd guest agent (bundled). Runs as root inside the microVM.' },
  logLevel: 'warning',
});
