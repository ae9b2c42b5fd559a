// Faults at start-up, with real processes and no guests: a data dir the VM user cannot reach
// (forkd doctor, the CLI and the daemon refuse it up front with the path and the fix), the
// state database locked by another daemon or damaged (refused, naming the file, left as it
// was), and an audit log that cannot be written (refused: the audit log fails closed).
// test-lane: host (no guest, nothing host-wide: scripts/run-tests.mjs runs it beside the guest suites)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, controllerDataDir, daemonArgs, runDaemonToExit, startDaemon } from '../helpers/controller.js';
import { runCli } from '../helpers/env.js';

// QEMU's user; any unprivileged user shows the rule (no guest is started here).
const VM_USER = 'nobody';
const env = { FORKD_VM_USER: VM_USER };
const asRoot = process.getuid?.() === 0;
const oneLine = (s: string): void => assert.equal(s.trimEnd().split('\n').length, 1, `one line: ${s}`);

describe(
  'a data dir the VM user cannot traverse',
  { skip: asRoot ? false : 'QEMU runs as the VM user only under root' },
  () => {
    let closed: string; // mode 0700, as `mktemp -d` makes it
    let dataDir: string;
    let audit: string;

    before(async () => {
      closed = await mkdtemp(join(tmpdir(), 'forkd-closed-'));
      await chmod(closed, 0o700);
      dataDir = join(closed, 'data');
      const logs = await mkdtemp(join(tmpdir(), 'forkd-closed-log-'));
      audit = join(logs, 'audit.log');
    });
    after(async () => {
      await rm(closed, { recursive: true, force: true });
      await rm(join(audit, '..'), { recursive: true, force: true });
    });

    test('0700 parent: forkd doctor fails the data-dir-access check with the path and the fix', async () => {
      const r = await runCli(['doctor', '--json', '--data-dir', dataDir], { env });
      assert.equal(r.code, 1, r.stderr);
      const report = JSON.parse(r.stdout) as {
        checks: { name: string; status: string; detail: string; hint?: string }[];
      };
      const check = report.checks.find((c) => c.name === 'data-dir-access');
      assert.ok(check, 'doctor has a data-dir-access check');
      assert.equal(check.status, 'fail');
      assert.match(check.detail, new RegExp(`cannot reach the data dir ${dataDir}: ${closed} is mode 0700`));
      assert.match(check.detail, new RegExp(`run: chmod o\\+x ${closed} `));
      assert.equal(check.hint, `chmod o+x ${closed}, or move the data dir`);
      const human = await runCli(['doctor', '--data-dir', dataDir], { env });
      assert.match(human.stdout, /^✗ data-dir-access +the VM user nobody \(uid 65534\) cannot reach/m);
    });

    test('0700 parent: the daemon refuses to start, one line naming the directory and the fix, exit 2', async () => {
      const r = await runDaemonToExit(['serve', '--bind', '127.0.0.1:0', '--data-dir', dataDir, '--audit-log', audit], {
        env,
      });
      assert.equal(r.code, 2, r.stderr);
      oneLine(r.stderr);
      assert.match(r.stderr, /^forkd-controller: refusing to start: the VM user nobody \(uid 65534\) cannot reach/);
      assert.ok(r.stderr.includes(`${closed} is mode 0700`), r.stderr);
      assert.ok(r.stderr.includes(`chmod o+x ${closed}`), r.stderr);
      assert.equal(existsSync(dataDir), false, 'nothing was created in the data dir');
    });

    test('0700 parent: a CLI command that starts QEMU refuses before starting it', async () => {
      const r = await runCli(['fork', '--tag', 'any', '-n', '1', '--data-dir', dataDir], { env });
      assert.equal(r.code, 1, r.stderr);
      oneLine(r.stderr);
      assert.match(r.stderr, /^forkd fork: the VM user nobody \(uid 65534\) cannot reach the data dir/);
      assert.ok(r.stderr.includes(`chmod o+x ${closed}`), r.stderr);
    });

    test('0711 parent: doctor passes the check and the daemon starts', async () => {
      await chmod(closed, 0o711);
      try {
        const r = await runCli(['doctor', '--json', '--data-dir', dataDir], { env });
        const report = JSON.parse(r.stdout) as { checks: { name: string; status: string; detail: string }[] };
        const check = report.checks.find((c) => c.name === 'data-dir-access');
        assert.equal(check?.status, 'pass', check?.detail);
        const d = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--data-dir', dataDir, '--audit-log', audit], {
          env,
        });
        assert.equal((await api(d.baseUrl, 'GET', '/healthz')).status, 200);
        assert.equal(await d.stop(), 0);
      } finally {
        await chmod(closed, 0o700);
      }
    });
  },
);

describe('the state database locked or damaged at start', () => {
  let root: string;
  let dataDir: string;
  before(async () => {
    ({ root, dataDir } = await controllerDataDir(false));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('a second daemon on the same data dir refuses, naming forkd.db; the first keeps serving', async () => {
    const first = await startDaemon(daemonArgs(dataDir, root), { env });
    try {
      const r = await runDaemonToExit(daemonArgs(dataDir, root), { env });
      assert.equal(r.code, 2, r.stderr);
      oneLine(r.stderr);
      assert.ok(r.stderr.includes(`${join(dataDir, 'forkd.db')} is locked`), r.stderr);
      assert.match(r.stderr, /another forkd-controller uses the data dir/);
      assert.equal((await api(first.baseUrl, 'GET', '/v1/sandboxes')).status, 200);
    } finally {
      assert.equal(await first.stop(), 0);
    }
  });

  test('a forkd.db of garbage bytes is refused, named, and left byte for byte as it was', async () => {
    const dir = join(root, 'garbage');
    await mkdir(dir, { mode: 0o755 });
    const db = join(dir, 'forkd.db');
    const bytes = randomBytes(64 * 1024);
    await writeFile(db, bytes, { mode: 0o644 });
    const r = await runDaemonToExit(daemonArgs(dir, root), { env });
    assert.equal(r.code, 2, r.stderr);
    oneLine(r.stderr);
    assert.ok(r.stderr.includes(`the state database ${db} is damaged`), r.stderr);
    assert.match(r.stderr, /left as it is: move it aside/);
    assert.ok((await readFile(db)).equals(bytes), 'same bytes after');
    assert.deepEqual(await readdir(dir), ['forkd.db'], 'no -wal or -shm file next to it');
  });

  test('a forkd.db with a valid header but damaged pages is refused too (quick_check)', async () => {
    const dir = join(root, 'pages');
    await mkdir(dir, { mode: 0o755 });
    // A real database made by the daemon, then its pages after the first overwritten.
    const d = await startDaemon(daemonArgs(dir, root), { env });
    assert.equal(await d.stop(), 0);
    const db = join(dir, 'forkd.db');
    const good = await readFile(db);
    assert.ok(good.length >= 8192, `database of ${good.length} bytes`);
    const bad = Buffer.concat([good.subarray(0, 4096), Buffer.alloc(good.length - 4096, 0xa5)]);
    await writeFile(db, bad);
    const r = await runDaemonToExit(daemonArgs(dir, root), { env });
    assert.equal(r.code, 2, r.stderr);
    oneLine(r.stderr);
    assert.ok(r.stderr.includes(`the state database ${db} is damaged`), r.stderr);
    assert.ok((await readFile(db)).equals(bad), 'same bytes after');
  });
});

describe('an audit log that cannot be written at start', () => {
  let root: string;
  let dataDir: string;
  before(async () => {
    ({ root, dataDir } = await controllerDataDir(false));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const refusedWith = async (audit: string, why: RegExp): Promise<void> => {
    const r = await runDaemonToExit(['serve', '--bind', '127.0.0.1:0', '--data-dir', dataDir, '--audit-log', audit], {
      env,
    });
    assert.equal(r.code, 2, r.stderr);
    oneLine(r.stderr);
    assert.ok(r.stderr.includes(`cannot append to the audit log ${audit} (`), r.stderr);
    assert.match(r.stderr, why);
    assert.match(r.stderr, /pass --audit-log FILE/);
  };

  test('the path is a directory, under a file, or a device that is full: refused, exit 2', async () => {
    const dir = join(root, 'audit-dir');
    await mkdir(dir);
    await refusedWith(dir, /EISDIR/);
    await writeFile(join(root, 'plain'), 'x');
    await refusedWith(join(root, 'plain', 'audit.log'), /ENOTDIR|EEXIST/);
    await refusedWith('/dev/full', /ENOSPC/);
    assert.equal(existsSync(join(dataDir, 'forkd.db')), false, 'refused before the state database is opened');
  });
});
