import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentile } from '../../src/core/fork.js';
import { compatibilityProblems, type SnapshotMeta } from '../../src/core/snapshot-meta.js';
import { parseKbField } from '../../src/host/memory.js';
import { newSandboxId, isSandboxId } from '../../src/lib/ids.js';
import { isValidTag } from '../../src/lib/tag.js';
import { FORKD_VERSION } from '../../src/lib/version.js';
import { readFileSync } from 'node:fs';

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
