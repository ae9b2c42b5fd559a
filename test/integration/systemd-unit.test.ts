// packaging/systemd/forkd-controller.service works as shipped: the daemon runs under exactly
// the unit's capability bounding set and NoNewPrivileges (setpriv, the set read from the unit
// file itself) and its start-up probe finds every isolation feature available; the host side
// of a spawn with every isolation option (cgroup with all three limits, network namespace with
// veth, tap and nftables, the process inside both as the VM user) succeeds under the same
// confinement; with CAP_NET_ADMIN removed the probe says per_child_netns is unavailable and
// a networked spawn is refused with 503 feature_unavailable before any snapshot lookup (so no
// guest is needed). `systemd-analyze verify` passes on the unit. No QEMU guest is booted.
import { strict as assert } from 'node:assert';
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { api, CONTROLLER, daemonArgs, errorCode, startDaemon, type DaemonProcess } from '../helpers/controller.js';
import { listSandboxNetns } from '../../src/host/netns.js';
import { removeHostNetwork } from '../../src/host/bridge.js';
import { findSystemTool } from '../../src/host/netns-detect.js';

const pexec = promisify(execFile);
const UNIT = fileURLToPath(new URL('../../../packaging/systemd/forkd-controller.service', import.meta.url));
const PROBE = fileURLToPath(new URL('../helpers/isolation-under-caps.js', import.meta.url));

/** `Key=value` settings of a unit file, continuation lines joined. */
export function unitSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const joined = text.replace(/\\\n/g, ' ');
  for (const raw of joined.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return out;
}

/** setpriv's argv prefix for a capability bounding set and no_new_privs. */
function setpriv(caps: readonly string[]): string[] {
  const list = caps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
  return ['setpriv', `--bounding-set=-all,${list}`, '--no-new-privs'];
}

/**
 * argv prefix: a private mount namespace in which every cgroup hierarchy is bind-remounted
 * read-only (what ProtectControlGroups=yes does); the host's mounts are untouched.
 */
const READ_ONLY_CGROUPS = [
  'unshare',
  '--mount',
  '--propagation',
  'private',
  'sh',
  '-ec',
  `for d in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/mounts); do
     mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"
   done
   exec "$@"`,
  'read-only-cgroups',
];

void describe('the systemd unit as shipped', () => {
  let unitCaps: string[] = [];
  let root = '';
  before(async () => {
    const settings = unitSettings(await readFile(UNIT, 'utf8'));
    const bounding = settings.get('CapabilityBoundingSet');
    assert.ok(bounding && bounding.length === 1, 'exactly one CapabilityBoundingSet= line');
    unitCaps = bounding[0]!.split(/\s+/).filter(Boolean);
    assert.deepEqual(settings.get('NoNewPrivileges'), ['yes']);
    assert.deepEqual(settings.get('User'), ['root']);
    root = await mkdtemp(join(tmpdir(), 'forkd-unit-'));
    await chmod(root, 0o755);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
    // The probe's sandbox left the shared host bridge and table up: remove them unless a
    // sandbox namespace (someone else's) still needs them.
    if ((await listSandboxNetns()).length === 0) await removeHostNetwork().catch(() => undefined);
  });

  void it('names a reason for every capability it keeps', async () => {
    const text = await readFile(UNIT, 'utf8');
    for (const cap of unitCaps) assert.match(text, new RegExp(`^#\\s+(\\S+,\\s+)*${cap}\\b`, 'm'), `${cap} reason`);
    for (const cap of ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_SETUID', 'CAP_SETGID', 'CAP_KILL'])
      assert.ok(unitCaps.includes(cap), cap);
  });

  void it('passes systemd-analyze verify', async (t) => {
    const analyze = await findSystemTool('systemd-analyze');
    if (!analyze) return t.skip('systemd-analyze is not installed (.ci/run installs the systemd package)');
    // verify checks that ExecStart's binary exists: point it at this checkout's build.
    const dir = join(root, 'unit');
    await pexec('mkdir', ['-p', dir]);
    const bin = join(dir, 'forkd-controller');
    await writeFile(bin, `#!/bin/sh\nexec ${process.execPath} ${CONTROLLER} "$@"\n`, { mode: 0o755 });
    const unit = (await readFile(UNIT, 'utf8')).replace('ExecStart=/usr/bin/forkd-controller', `ExecStart=${bin}`);
    const copy = join(dir, 'forkd-controller.service');
    await writeFile(copy, unit);
    const r = await pexec(analyze, ['verify', copy]).catch((e: { stdout: string; stderr: string }) => e);
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'systemd-analyze verify is silent on a good unit');
  });

  void it("under the unit's capabilities: every isolation feature is available", async () => {
    const data = join(root, 'data-all');
    const d = await startDaemon(daemonArgs(data, root), { prefix: setpriv(unitCaps) });
    try {
      const caps = await api(d.baseUrl, 'GET', '/v1/capabilities');
      assert.equal(caps.status, 200);
      const body = caps.json as {
        missing: string[];
        effective: string[];
        features: Record<string, { available: boolean; reason: string | null }>;
      };
      assert.deepEqual(body.missing, []);
      assert.deepEqual([...body.effective].sort(), [...unitCaps].sort(), 'effective set = the unit bounding set');
      for (const [f, s] of Object.entries(body.features)) assert.ok(s.available, `${f}: ${s.reason}`);
      const node = await api(d.baseUrl, 'GET', '/v1/node');
      assert.equal(node.status, 200);
    } finally {
      await d.stop();
    }
  });

  void it("under the unit's capabilities: a spawn's host side with every isolation option works", async () => {
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const [cmd, ...args] = [...setpriv(unitCaps), process.execPath, PROBE, join(root, 'data-probe')];
      const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      p.once('close', (code) => resolve({ code, stdout, stderr }));
    });
    assert.equal(out.code, 0, out.stderr);
    const r = JSON.parse(out.stdout) as {
      uid: number;
      sameNs: boolean;
      inCgroup: boolean;
      netns: string;
      oomAdj: true | string;
    };
    const vmUid = Number((await pexec('id', ['-u', 'forkd-vm'])).stdout.trim());
    assert.equal(r.uid, vmUid, 'runs as the VM user');
    assert.ok(r.sameNs, 'runs inside the sandbox namespace');
    assert.ok(r.inCgroup, 'is in the sandbox memory cgroup');
    assert.equal(r.oomAdj, true, 'oom_score_adj of the VM-user process is writable');
    assert.ok(!(await listSandboxNetns()).includes(r.netns), 'namespace removed');
  });

  void it('without CAP_NET_ADMIN: per_child_netns is unavailable and such a spawn is a 503 feature_unavailable', async () => {
    const data = join(root, 'data-nonet');
    const caps = unitCaps.filter((c) => c !== 'CAP_NET_ADMIN');
    let d: DaemonProcess | undefined;
    try {
      d = await startDaemon(daemonArgs(data, root), { prefix: setpriv(caps) });
      const probe = await api(d.baseUrl, 'GET', '/v1/capabilities');
      const body = probe.json as {
        missing: string[];
        features: Record<string, { available: boolean; reason: string }>;
      };
      assert.deepEqual(body.missing, ['CAP_NET_ADMIN']);
      assert.equal(body.features.per_child_netns!.available, false);
      assert.match(body.features.per_child_netns!.reason, /CAP_NET_ADMIN/);
      assert.ok(body.features.memory_limit!.available, 'limits do not need NET_ADMIN');
      // The snapshot does not exist: the capability refusal comes first.
      const spawnNet = await api(d.baseUrl, 'POST', '/v1/sandboxes', {
        json: { snapshot_tag: 'no-such-snapshot', per_child_netns: true },
      });
      assert.equal(spawnNet.status, 503, spawnNet.text);
      assert.equal(errorCode(spawnNet), 'feature_unavailable');
      assert.match(spawnNet.text, /per_child_netns.*CAP_NET_ADMIN/);
      // A limit still gets as far as the snapshot lookup.
      const spawnLimit = await api(d.baseUrl, 'POST', '/v1/sandboxes', {
        json: { snapshot_tag: 'no-such-snapshot', memory_limit_mib: 128 },
      });
      assert.equal(spawnLimit.status, 404, spawnLimit.text);
      assert.equal(errorCode(spawnLimit), 'not_found');
    } finally {
      await d?.stop();
    }
  });

  void it('with the cgroup hierarchies read-only: limits unavailable, a limited spawn is a 503 feature_unavailable', async () => {
    const data = join(root, 'data-rocg');
    const d = await startDaemon(daemonArgs(data, root), { prefix: [...READ_ONLY_CGROUPS, ...setpriv(unitCaps)] });
    try {
      const probe = await api(d.baseUrl, 'GET', '/v1/capabilities');
      const f = (probe.json as { features: Record<string, { available: boolean; reason: string }> }).features;
      assert.equal(f.memory_limit!.available, false);
      assert.match(f.memory_limit!.reason, /not writable.*EROFS.*ProtectControlGroups=no/);
      assert.equal(f.per_child_netns!.available, false, 'a networked sandbox needs its cgroup too');
      const spawn = await api(d.baseUrl, 'POST', '/v1/sandboxes', {
        json: { snapshot_tag: 'no-such-snapshot', memory_limit_mib: 128 },
      });
      assert.equal(spawn.status, 503, spawn.text);
      assert.equal(errorCode(spawn), 'feature_unavailable');
      const plain = await api(d.baseUrl, 'POST', '/v1/sandboxes', { json: { snapshot_tag: 'no-such-snapshot' } });
      assert.equal(errorCode(plain), 'not_found', 'a spawn without isolation is unaffected');
    } finally {
      await d.stop();
    }
  });
});
