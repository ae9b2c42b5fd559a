// `npm run test:reliability`: the long profile of the reliability suite: the fuzzer with
// FORKD_FUZZ_RUNS (default 100000) requests, the soak for FORKD_SOAK_SECS (default 600), and the
// load and fault suites as in npm test. `--record` merges the fuzz figures into
// bench/results/reliability.json and writes the load figures to bench/results/load.{json,md}.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const files = [
  'dist/test/integration/http-fuzz.test.js',
  'dist/test/integration/startup-faults.test.js',
  'dist/test/integration/audit-runtime.test.js',
  'dist/test/integration/faults.test.js',
  'dist/test/integration/load.test.js',
  'dist/test/integration/soak.test.js',
].filter((f) => existsSync(f));
if (files.length === 0) {
  console.error('no reliability test files found; did `npm run build` run?');
  process.exit(1);
}
const env = {
  ...process.env,
  FORKD_FUZZ_RUNS: process.env.FORKD_FUZZ_RUNS ?? '100000',
  FORKD_SOAK_SECS: process.env.FORKD_SOAK_SECS ?? '600',
};
if (process.argv.includes('--record')) {
  env.FORKD_FUZZ_RESULTS = resolve('bench/results/reliability.json');
  env.FORKD_LOAD_RESULTS = resolve('bench/results/load');
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env,
});
process.exit(result.status ?? 1);
