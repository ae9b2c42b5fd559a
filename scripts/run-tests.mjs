// Runs the compiled tests with Node's built-in runner and prints its summary.
// `--unit` runs only test/unit.
//
// Two lanes run side by side, each one file at a time:
// - the guest lane: integration files that boot real QEMU guests or make host-wide objects
//   (netns, cgroups, links, nftables). Two cores cannot host several TCG test fleets at once,
//   and their leak checks look at the whole host, so these never overlap each other.
// - the host lane: the unit files and the integration files whose first lines say
//   `// test-lane: host` (they boot no guest and make nothing host-wide but a daemon's
//   start-up probes, which the leak check tells apart). A guest suite leaves one core mostly
//   idle under TCG; these fill it. Their output is held and printed after the guest lane's.
// Then test/zz-leaks, alone: the whole run left nothing behind.
// FORKD_TEST_LANES=1 runs everything in one lane (one file at a time, output as it comes).
// A test that hangs fails after 20 minutes instead of holding CI to its limit.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

const isHostLane = (f) =>
  f.startsWith('dist/test/unit/') || /^\/\/ test-lane: host\b/m.test(readFileSync(f, 'utf8').slice(0, 4000));
const last = selected.filter((f) => f.startsWith('dist/test/zz-leaks/'));
const rest = selected.filter((f) => !last.includes(f));
const oneLane = process.env.FORKD_TEST_LANES === '1';
const hostLane = oneLane ? [] : rest.filter(isHostLane);
const guestLane = rest.filter((f) => !hostLane.includes(f));

const timingsDir = mkdtempSync(join(tmpdir(), 'forkd-test-timings-'));
let lanes = 0;

/** One `node --test` over `lane`, a file at a time; `hold` collects its output instead of printing it. */
function run(lane, hold) {
  if (lane.length === 0) return Promise.resolve({ code: 0, output: '' });
  const timings = join(timingsDir, `lane-${++lanes}.txt`);
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        '--test',
        '--test-concurrency=1',
        '--test-timeout=1200000',
        '--test-reporter=spec',
        '--test-reporter-destination=stdout',
        `--test-reporter=${fileURLToPath(import.meta.resolve('./file-timings-reporter.mjs'))}`,
        `--test-reporter-destination=${timings}`,
        ...lane,
      ],
      { stdio: ['ignore', hold ? 'pipe' : 'inherit', hold ? 'pipe' : 'inherit'] },
    );
    let output = '';
    if (hold) {
      child.stdout.on('data', (c) => (output += c));
      child.stderr.on('data', (c) => (output += c));
    }
    child.on('exit', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output }));
  });
}

const started = Date.now();
const [guest, host] = await Promise.all([run(guestLane, false), run(hostLane, guestLane.length > 0)]);
if (hostLane.length > 0 && guestLane.length > 0) {
  console.log(`\n== host lane (${hostLane.length} files, run beside the guest lane above)`);
  process.stdout.write(host.output);
}
const leaks = await run(last, false);
const codes = [guest.code, host.code, leaks.code];
const slowest = readdirSync(timingsDir)
  .flatMap((f) => readFileSync(join(timingsDir, f), 'utf8').split('\n'))
  .filter((l) => l.trim() !== '')
  .sort((a, b) => parseFloat(b) - parseFloat(a))
  .slice(0, 12);
rmSync(timingsDir, { recursive: true, force: true });
if (slowest.length > 1) console.log(`\n== the slowest files (their tests and hooks)\n${slowest.join('\n')}`);
if (!unitOnly && !only)
  console.log(
    `\n== ${guestLane.length} guest-lane + ${hostLane.length} host-lane + ${last.length} final files in ${Math.round((Date.now() - started) / 1000)} s: ${codes.every((c) => c === 0) ? 'all passed' : 'FAILED'}`,
  );
process.exit(codes.find((c) => c !== 0) ?? 0);
