// Snapshot lineage through parentTag (images, rmi, packs with ancestors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ancestorsOf, dependentsOf, MAX_LINEAGE_DEPTH, removalOrder } from '../../src/core/lineage.js';

const parents = new Map<string, string | null>([
  ['root', null],
  ['a', 'root'],
  ['b', 'a'],
  ['c', 'a'],
  ['orphan', 'gone'],
  ['loop1', 'loop2'],
  ['loop2', 'loop1'],
]);

test('ancestors: root first; a missing parent ends the chain; cycles end too', () => {
  assert.deepEqual(ancestorsOf('b', parents), ['root', 'a']);
  assert.deepEqual(ancestorsOf('root', parents), []);
  assert.deepEqual(ancestorsOf('orphan', parents), ['gone']);
  assert.deepEqual(ancestorsOf('loop1', parents), ['loop2']);
  const long = new Map<string, string | null>(Array.from({ length: 200 }, (_, i) => [`t${i}`, i ? `t${i - 1}` : null]));
  assert.equal(ancestorsOf('t199', long).length, MAX_LINEAGE_DEPTH);
});

test('dependents are direct children, sorted', () => {
  assert.deepEqual(dependentsOf('a', parents), ['b', 'c']);
  assert.deepEqual(dependentsOf('root', parents), ['a']);
  assert.deepEqual(dependentsOf('b', parents), []);
});

test('removal order puts children before their parents within a batch', () => {
  const order = removalOrder(['root', 'b', 'a', 'c'], parents);
  for (const [child, parent] of [
    ['a', 'root'],
    ['b', 'a'],
    ['c', 'a'],
  ] as const)
    assert.ok(order.indexOf(child) < order.indexOf(parent), `${child} before ${parent}: ${order.join(' ')}`);
  assert.deepEqual(removalOrder(['x', 'x'], parents), ['x']);
});
