// Runs the compiled tests with Node's built-in runner and prints its summary.
// `--unit` runs only test/unit. Integration tests boot real QEMU guests, so files run one at a
// time (concurrency 1): two cores cannot host several TCG test fleets at once. A test that
// hangs fails after 20 minutes instead of holding CI to its limit.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const unitOnly = process.argv.includes('--unit');
const roots = unitOnly ? ['dist/test/unit'] : ['dist/test/unit', 'dist/test/integration', 'dist/test/zz-leaks'];

function collect(dir) {
  let out = [];
  let entries = [];
  try {
    entries = readdirSync(dir).sort();
  } catch {
    return out;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(collect(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = roots.flatMap(collect);
if (files.length === 0) {
  console.error('no test files found; did `npm run build` run?');
  process.exit(1);
}
const only = process.env.FORKD_TEST_ONLY;
const selected = only ? files.filter((f) => f.includes(only)) : files;
const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=1', '--test-timeout=1200000', '--test-reporter=spec', ...selected],
  {
    stdio: 'inherit',
  },
);
process.exit(result.status ?? 1);
