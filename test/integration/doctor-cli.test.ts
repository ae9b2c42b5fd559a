// Runs the built `forkd doctor` as a child process on this host, against an empty data dir.
// test-lane: host (no guest, nothing host-wide: scripts/run-tests.mjs runs it beside the guest suites)
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { leakedProbeNamespaces } from '../helpers/leaks.js';

const distDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// package.json's bin says dist/bin/forkd.js; tsc with rootDir "." emits dist/src/bin/forkd.js.
const cli = [join(distDir, 'bin', 'forkd.js'), join(distDir, 'src', 'bin', 'forkd.js')].find((p) => existsSync(p));

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function forkd(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const childEnv = { ...process.env, ...env };
  if (!('FORKD_ACCEL' in env)) delete childEnv.FORKD_ACCEL;
  delete childEnv.FORKD_DATA_DIR;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli ?? 'missing-cli', ...args],
      { env: childEnv, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** stdout as JSON; a crash shows its stderr instead of "Unexpected end of JSON input". */
function parseJson<T>(result: CliResult): T {
  assert.notEqual(result.stdout, '', `no stdout (exit ${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** What the rule should say on this host, computed independently of forkd's code. */
async function expectedAccel(): Promise<'kvm' | 'tcg'> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8');
  const flags = (cpuinfo.split('\n').find((l) => l.startsWith('flags')) ?? '').split(/\s+/);
  const virt = flags.includes('vmx') || flags.includes('svm');
  let opens = false;
  try {
    await (await open('/dev/kvm', 'r+')).close();
    opens = true;
  } catch {
    opens = false;
  }
  return virt && opens ? 'kvm' : 'tcg';
}

void describe('forkd doctor (built CLI)', () => {
  let tmp = '';
  let dataDir = '';
  before(async () => {
    assert.ok(cli, `built CLI not found under ${distDir}; run npm run build`);
    tmp = await mkdtemp(join(tmpdir(), 'forkd-doctor-'));
    dataDir = join(tmp, 'data'); // does not exist: doctor must not need it nor create it
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  void it('--json reports every check, the accelerator, and exits 1 without a kernel', async () => {
    const result = await forkd(['doctor', '--json', '--data-dir', dataDir]);
    assert.equal(result.code, 1, result.stderr);
    const report = parseJson<{
      checks: { name: string; status: string; detail: string; hint?: string }[];
      summary: { pass: number; warn: number; fail: number };
      accel: { accel: string; reason: string; warning?: string };
    }>(result);
    assert.deepEqual(Object.keys(report).sort(), ['accel', 'checks', 'summary']);
    for (const c of report.checks) {
      assert.ok(['pass', 'warn', 'fail'].includes(c.status), `${c.name}: ${c.status}`);
      assert.equal(typeof c.detail, 'string');
      if (c.status === 'fail') assert.ok(c.hint, `failed check ${c.name} has a hint`);
    }
    const count = (s: string): number => report.checks.filter((c) => c.status === s).length;
    assert.deepEqual(report.summary, { pass: count('pass'), warn: count('warn'), fail: count('fail') });

    const byName = new Map(report.checks.map((c) => [c.name, c]));
    assert.equal(byName.get('kernel')?.status, 'fail');
    assert.match(byName.get('kernel')?.hint ?? '', /forkd setup --data-dir/);
    assert.equal(byName.get('image')?.status, 'fail');
    assert.ok(['pass', 'warn', 'fail'].includes(byName.get('disk')?.status ?? ''));

    const accel = await expectedAccel();
    assert.equal(report.accel.accel, accel);
    assert.ok(report.accel.reason.length > 0);
    assert.equal(byName.get('accel')?.status, accel === 'tcg' ? 'warn' : 'pass');
    if (accel === 'tcg') assert.match(report.accel.warning ?? '', /TCG/);

    assert.equal(existsSync(dataDir), false, 'doctor created the data dir');
  });

  void it('prints one line per check and a summary for humans', async () => {
    const { code, stdout, stderr } = await forkd(['doctor', '--data-dir', dataDir]);
    assert.equal(code, 1, stderr);
    assert.match(stdout, /^✗ kernel +no guest kernel in .* → run: sudo forkd setup --data-dir /m);
    assert.match(stdout, /^pass=\d+ warn=\d+ fail=\d+$/m);
  });

  void it('honors FORKD_ACCEL=tcg', async () => {
    const result = await forkd(['doctor', '--json', '--data-dir', dataDir], { FORKD_ACCEL: 'tcg' });
    const report = parseJson<{ accel: { accel: string; reason: string } }>(result);
    assert.equal(report.accel.accel, 'tcg');
    assert.match(report.accel.reason, /FORKD_ACCEL=tcg/);
  });

  void it('rejects an unknown flag with exit code 2', async () => {
    const { code, stderr } = await forkd(['doctor', '--bogus']);
    assert.equal(code, 2);
    assert.match(stderr, /bogus/);
  });

  void it('leaves no probe network namespace behind', async () => {
    // Each doctor run has exited: a probe namespace named after its pid would be a leak (a live
    // daemon's probe, from a guest suite running beside this one, is not).
    assert.deepEqual(await leakedProbeNamespaces(), []);
  });
});
