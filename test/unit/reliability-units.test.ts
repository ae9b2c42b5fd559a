// Units behind the reliability suite: who may traverse a directory (mode bits, owner, group),
// the wrong-token throttle, the audit log's fail-closed state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ancestors,
  canSearch,
  findUnreachable,
  parseGroupMembership,
  unreachableMessage,
  type Identity,
} from '../../src/host/data-dir-access.js';
import { AuthThrottle } from '../../src/api/auth.js';
import { AuditLog } from '../../src/api/audit.js';
import { silentLogger } from '../../src/lib/log.js';

const vm: Identity = { name: 'forkd-vm', uid: 990, gids: [990, 44] };

test('canSearch: the owner class wins, then the group class, then other', () => {
  assert.equal(canSearch({ mode: 0o700, uid: 0, gid: 0 }, vm), false);
  assert.equal(canSearch({ mode: 0o711, uid: 0, gid: 0 }, vm), true);
  assert.equal(canSearch({ mode: 0o755, uid: 0, gid: 0 }, vm), true);
  assert.equal(canSearch({ mode: 0o710, uid: 0, gid: 44 }, vm), true, 'a supplementary group');
  assert.equal(canSearch({ mode: 0o701, uid: 0, gid: 44 }, vm), false, 'in the group: the other bit does not apply');
  assert.equal(canSearch({ mode: 0o077, uid: 990, gid: 990 }, vm), false, 'the owner without u+x');
  assert.equal(canSearch({ mode: 0o100, uid: 990, gid: 0 }, vm), true);
  assert.equal(canSearch({ mode: 0o000, uid: 5, gid: 5 }, { name: 'root', uid: 0, gids: [0] }), true);
});

test('ancestors and /etc/group membership', () => {
  assert.deepEqual(ancestors('/a/b/c'), ['/', '/a', '/a/b', '/a/b/c']);
  assert.deepEqual(ancestors('/'), ['/']);
  const group = 'root:x:0:\nkvm:x:44:forkd-vm,alice\nvm:x:990:\nbad:x:zz:forkd-vm\nother:x:7:forkd-vmx\n';
  assert.deepEqual(parseGroupMembership(group, 'forkd-vm'), [44]);
});

test('findUnreachable walks every existing ancestor and the target of a symlink', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to own dirs as another uid');
  const root = await mkdtemp(join(tmpdir(), 'forkd-reach-'));
  try {
    const nobody: Identity = { name: 'nobody', uid: 65534, gids: [65534] };
    await chmod(root, 0o700);
    const data = join(root, 'data', 'not', 'yet');
    const u = await findUnreachable(data, nobody);
    assert.equal(u?.dir, root);
    assert.equal(u?.who, 'o');
    const msg = unreachableMessage(data, nobody, u);
    assert.match(msg, new RegExp(`${root} is mode 0700`));
    assert.match(msg, new RegExp(`chmod o\\+x ${root} `));
    await chmod(root, 0o711);
    assert.equal(await findUnreachable(data, nobody), undefined);
    // A symlink into a closed directory: the literal path is open, the target is not.
    const closed = join(root, 'closed');
    await mkdir(join(closed, 'inner'), { recursive: true });
    await chmod(closed, 0o700);
    await symlink(join(closed, 'inner'), join(root, 'link'));
    assert.equal((await findUnreachable(join(root, 'link', 'data'), nobody))?.dir, closed);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('AuthThrottle: a burst, then one a second, per client; bounded memory', () => {
  let now = 1_000_000;
  const th = new AuthThrottle({ burst: 3, perSec: 1, maxClients: 2 }, () => now);
  assert.equal(th.fail('a'), undefined);
  assert.equal(th.fail('a'), undefined);
  assert.equal(th.fail('a'), undefined);
  assert.equal(th.fail('a'), 1, 'over the burst: retry after 1 s');
  assert.equal(th.fail('b'), undefined, 'another client has its own budget');
  now += 1000;
  assert.equal(th.fail('a'), undefined, 'refilled by one');
  assert.equal(th.fail('a'), 1);
  th.fail('c');
  assert.equal(th.tracked, 2, 'the least recently failing client was forgotten');
});

test('AuditLog fails closed: refuses to open an unwritable path, and tracks run-time write failures', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'forkd-audit-'));
  try {
    assert.throws(
      () => AuditLog.open(dir, silentLogger),
      (e: Error) => e.message.includes(`audit log ${dir} (`),
    );
    assert.throws(
      () => AuditLog.open('/dev/full', silentLogger),
      /cannot append to the audit log \/dev\/full \(ENOSPC/,
    );
    const log = AuditLog.open(join(dir, 'a', 'audit.log'), silentLogger);
    assert.equal(log.available, true);
    log.close(); // the descriptor is gone: the next write fails (EBADF)
    log.event({ event: 'x' });
    assert.equal(log.available, false);
    assert.equal(log.unavailableError().code, 'audit_unavailable');
    assert.equal(log.unavailableError().details?.retryAfterSecs, 5);
    log.reopen(); // writes audit.reopened: writable again
    assert.equal(log.available, true);
    log.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
