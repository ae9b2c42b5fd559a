import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentile } from '../../src/core/fork.js';
import { compatibilityProblems, type SnapshotMeta } from '../../src/core/snapshot-meta.js';
import { parseKbField } from '../../src/host/memory.js';
import { newSandboxId, isSandboxId } from '../../src/lib/ids.js';
import { isValidTag } from '../../src/lib/tag.js';
import { FORKD_VERSION } from '../../src/lib/version.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StateStore, type SandboxRow } from '../../src/core/state/store.js';

test('percentile uses nearest rank', () => {
  const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.equal(percentile(xs, 0.5), 5);
  assert.equal(percentile(xs, 0.9), 9);
  assert.equal(percentile([], 0.5), undefined);
  assert.equal(percentile([7], 0.9), 7);
});

test('compatibility problems name what differs', () => {
  const meta = { accel: 'kvm', qemuVersion: '7.2.22' } as SnapshotMeta;
  assert.deepEqual(compatibilityProblems(meta, { accel: 'kvm', qemuVersion: '7.2.22' }), []);
  const problems = compatibilityProblems(meta, { accel: 'tcg', qemuVersion: '8.2.0' });
  assert.equal(problems.length, 2);
  assert.match(problems.join(';'), /accelerator: snapshot kvm, this host tcg/);
  assert.match(problems.join(';'), /QEMU version: snapshot 7.2.22, this host 8.2.0/);
});

test('/proc kB fields parse to bytes', () => {
  assert.equal(parseKbField('Rss:     2048 kB\nPss:      1024 kB\n', 'Pss'), 1024 * 1024);
  assert.equal(parseKbField('nothing', 'Pss'), undefined);
});

test('sandbox ids are unique, unguessable-looking and valid tags', () => {
  const ids = new Set(Array.from({ length: 1000 }, () => newSandboxId()));
  assert.equal(ids.size, 1000);
  for (const id of ids) {
    assert.ok(isSandboxId(id), id);
    assert.ok(isValidTag(id), id);
  }
  assert.equal(isSandboxId('sb-../../etc'), false);
});

test('FORKD_VERSION matches package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  assert.equal(FORKD_VERSION, pkg.version);
});

test('state store: a v1 file opens, gains the v2 columns in place, and keeps its rows', () => {
  const dir = mkdtempSync(join(tmpdir(), 'forkd-store-'));
  try {
    // The v1 schema as v1 daemons created it, with a networked and a plain sandbox.
    const v1 = new Database(join(dir, 'forkd.db'));
    v1.exec(`CREATE TABLE sandboxes (id TEXT PRIMARY KEY, snapshot_tag TEXT NOT NULL, state TEXT NOT NULL,
      pid INTEGER, accel TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, expires_at TEXT,
      memory_limit_mib INTEGER, per_child_netns INTEGER NOT NULL DEFAULT 0, metadata TEXT NOT NULL DEFAULT '{}',
      reason TEXT);
      CREATE INDEX sandboxes_by_tag ON sandboxes (snapshot_tag);
      CREATE TABLE snapshots (tag TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL, error TEXT);
      INSERT INTO sandboxes VALUES ('sb-aaaaaaaaaaaaaaaa', 'base', 'running', 42, 'tcg', 't', 't', NULL, 256, 1, '{"a":"b"}', NULL);
      INSERT INTO sandboxes VALUES ('sb-bbbbbbbbbbbbbbbb', 'base', 'failed', NULL, 'tcg', 't', 't', NULL, NULL, 0, '{}', 'oom');
      PRAGMA user_version = 1;`);
    v1.close();

    const store = StateStore.open(dir);
    const old = store.getSandbox('sb-aaaaaaaaaaaaaaaa')!;
    assert.deepEqual(
      [old.memoryLimitMiB, old.cpuLimit, old.pidsLimit, old.perChildNetns, old.egress, old.metadata],
      [256, null, null, true, 'deny', { a: 'b' }],
      'a v1 namespace had the only v1 policy: deny',
    );
    const plain = store.getSandbox('sb-bbbbbbbbbbbbbbbb')!;
    assert.deepEqual([plain.egress, plain.reason], [null, 'oom']);
    const row: SandboxRow = {
      ...old,
      id: 'sb-cccccccccccccccc',
      cpuLimit: 0.5,
      pidsLimit: 64,
      egress: { allow: ['198.51.100.0/24'] },
    };
    store.insertSandbox(row);
    store.close();

    const again = StateStore.open(dir);
    assert.deepEqual(again.getSandbox('sb-cccccccccccccccc'), row);
    assert.equal(again.listSandboxes().length, 3);
    again.close();
    const db = new Database(join(dir, 'forkd.db'), { readonly: true });
    assert.equal(db.pragma('user_version', { simple: true }), 2);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
