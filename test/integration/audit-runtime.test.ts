// The audit log failing while the daemon runs (no guests): the documented choice is to fail
// closed (docs/SECURITY.md). The audit log is a FIFO read by `cat`; killing the reader makes
// every write fail with EPIPE, a new reader plus SIGHUP makes the log writable again.
// test-lane: host (no guest, nothing host-wide: scripts/run-tests.mjs runs it beside the guest suites)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { api, controllerDataDir, errorCode, startDaemon, type DaemonProcess } from '../helpers/controller.js';

const env = { FORKD_VM_USER: 'nobody' };
let root: string;
let dataDir: string;
let fifo: string;
let d: DaemonProcess;
let reader: ChildProcess | undefined;

function startReader(out: string): ChildProcess {
  // `cat` keeps the FIFO open for reading; what the daemon writes lands in `out`.
  const outFd = openSync(out, 'a');
  const child = spawn('cat', [fifo], { stdio: ['ignore', outFd, 'inherit'] });
  closeSync(outFd);
  return child;
}

async function waitFor(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

before(async () => {
  ({ root, dataDir } = await controllerDataDir(false));
  fifo = join(root, 'audit.fifo');
  execFileSync('mkfifo', ['-m', '0600', fifo]);
  reader = startReader(join(root, 'audit.out'));
  d = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--data-dir', dataDir, '--audit-log', fifo], { env });
});

after(async () => {
  if (d) assert.equal(await d.stop(), 0);
  reader?.kill();
  await rm(root, { recursive: true, force: true });
});

test('audit log unwritable at run time: state-changing requests get 503 audit_unavailable, reads go on, SIGHUP recovers', async () => {
  const base = d.baseUrl;
  const spawnReq = { json: { snapshot_tag: 'no-such-tag' } };
  // Writable: a spawn of an unknown snapshot is served (404).
  assert.equal((await api(base, 'POST', '/v1/sandboxes', spawnReq)).status, 404);
  await waitFor('the audit line', async () =>
    (await readFile(join(root, 'audit.out'), 'utf8')).includes('"path":"/v1/sandboxes"'),
  );

  // The reader goes away: the next write fails (EPIPE) and the daemon notices.
  const r = reader!;
  reader = undefined;
  await new Promise<void>((resolve) => {
    r.once('exit', () => resolve());
    r.kill();
  });
  assert.equal((await api(base, 'GET', '/healthz')).status, 200);
  await waitFor('the daemon log line', () => Promise.resolve(d.stderr().includes('cannot write the audit log')));

  for (const [method, path, opts] of [
    ['POST', '/v1/sandboxes', spawnReq],
    ['DELETE', '/v1/snapshots/no-such-tag', {}],
    ['POST', '/v1/sandboxes/sb-aaaaaaaaaaaaaaaa/exec', { json: { args: ['true'] } }],
  ] as const) {
    const res = await api(base, method, path, opts);
    assert.equal(res.status, 503, `${method} ${path}: ${res.text}`);
    assert.equal(errorCode(res), 'audit_unavailable');
    assert.equal(res.headers['retry-after'], '5');
    assert.match((res.json as { error: string }).error, /audit log .*audit\.fifo cannot be written \(EPIPE\)/);
  }
  // Reads are still served.
  assert.equal((await api(base, 'GET', '/v1/sandboxes')).status, 200);
  assert.equal((await api(base, 'GET', '/v1/snapshots/no-such-tag')).status, 404);
  // Nothing is lost silently: the records went to the daemon log instead.
  assert.match(d.stderr(), /"msg":"audit record not written".*"status":503/);
  assert.equal(d.proc.exitCode, null, 'the daemon is still up');

  // A reader again, SIGHUP reopens the FIFO, the reopen line is written: served again.
  reader = startReader(join(root, 'audit.out2'));
  await new Promise((r2) => setTimeout(r2, 200)); // cat has opened the FIFO
  d.proc.kill('SIGHUP');
  await waitFor('audit log writable again', () => Promise.resolve(d.stderr().includes('audit log writable again')));
  assert.equal((await api(base, 'POST', '/v1/sandboxes', spawnReq)).status, 404);
  await waitFor('the new audit lines', async () =>
    (await readFile(join(root, 'audit.out2'), 'utf8')).includes('"event":"audit.reopened"'),
  );
});
