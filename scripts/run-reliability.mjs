// `npm run test:reliability`: the long profile of the reliability suite (the load and soak
// suites join this list as they land; the fault suite runs the same in both profiles). FORKD_FUZZ_RUNS defaults to
// 100000 requests; `--record` merges the figures into bench/results/reliability.json.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const files = [
  'dist/test/integration/http-fuzz.test.js',
  'dist/test/integration/startup-faults.test.js',
  'dist/test/integration/audit-runtime.test.js',
  'dist/test/integration/faults.test.js',
].filter((f) => existsSync(f));
if (files.length === 0) {
  console.error('no reliability test files found; did `npm run build` run?');
  process.exit(1);
}
const env = { ...process.env, FORKD_FUZZ_RUNS: process.env.FORKD_FUZZ_RUNS ?? '100000' };
if (process.argv.includes('--record')) env.FORKD_FUZZ_RESULTS = resolve('bench/results/reliability.json');
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env,
});
process.exit(result.status ?? 1);
