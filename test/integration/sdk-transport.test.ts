// The SDK's transport against the real daemon process without guests: https with the
// daemon's self-signed certificate as CA (and refused without it), a unix: socket, and the
// CLI's --ca flag. Ends with the leak check.
// test-lane: host (no guest, nothing host-wide: scripts/run-tests.mjs runs it beside the guest suites)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Controller, ForkdApiError } from 'forkd';
import { controllerDataDir, daemonArgs, selfSigned, startDaemon, type DaemonProcess } from '../helpers/controller.js';
import { runCli } from '../helpers/env.js';
import { findLeaks } from '../helpers/leaks.js';

const TOKEN = 'c4e2a9f17d3b05e6a8c1f2d4b7e9a0c3';

describe('SDK transport: TLS with a CA, unix socket', () => {
  let root: string;
  let dataDir: string;
  let tls: DaemonProcess;
  let unix: DaemonProcess;
  let cert: string;
  let uRoot: string | undefined;
  const sock = (): string => join(root, 'forkd.sock');

  before(async () => {
    ({ root, dataDir } = await controllerDataDir(false));
    let key: string;
    ({ cert, key } = await selfSigned(root));
    const tokenFile = join(root, 'token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    tls = await startDaemon(
      daemonArgs(dataDir, root, ['--tls-cert', cert, '--tls-key', key, '--token-file', tokenFile]),
    );
    const u = await controllerDataDir(false);
    uRoot = u.root;
    unix = await startDaemon(daemonArgs(u.dataDir, u.root, ['--bind', `unix:${sock()}`, '--token-file', tokenFile]));
  });

  after(async () => {
    await tls?.stop();
    await unix?.stop();
    assert.deepEqual(await findLeaks(dataDir, { dataDirOnly: true }), []); // no guest: nothing host-wide to leak
    await rm(root, { recursive: true, force: true });
    if (uRoot) await rm(uRoot, { recursive: true, force: true });
  });

  test('https: trusted with ca, refused without it', async () => {
    const url = `https://${tls.address}`;
    const ca = await readFile(cert);
    assert.equal((await new Controller({ url, token: TOKEN, ca }).version()).api, 'v1');
    assert.deepEqual(await new Controller({ url, token: TOKEN, ca }).sandboxes.list(), []);
    await assert.rejects(
      new Controller({ url, token: TOKEN }).version(),
      (e: unknown) => e instanceof ForkdApiError && e.code === 'unreachable' && /certificate/i.test(e.message),
    );
    const ok = await runCli(['ls', '--json', '--url', url, '--token', TOKEN, '--ca', cert]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), { sandboxes: [] });
    const noCa = await runCli(['ls', '--url', url, '--token', TOKEN]);
    assert.equal(noCa.code, 1);
    assert.match(noCa.stderr, /^forkd ls: cannot reach the forkd daemon at https:/);
  });

  test('unix: socket URL', async () => {
    const c = new Controller({ url: `unix:${sock()}`, token: TOKEN });
    assert.equal((await c.version()).api, 'v1');
    assert.deepEqual(await c.snapshots.list(), []);
    const r = await runCli(['snapshot', 'ls', '--json'], { env: { FORKD_URL: `unix:${sock()}`, FORKD_TOKEN: TOKEN } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { snapshots: [] });
  });
});
