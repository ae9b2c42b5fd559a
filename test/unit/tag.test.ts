import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertTag, isValidTag } from '../../src/lib/tag.js';
import { ForkdError } from '../../src/lib/errors.js';
import { DataPaths } from '../../src/core/paths.js';
import { HOSTILE_TAGS } from '../helpers/corpus.js';

test('valid tags pass', () => {
  for (const t of ['a', 'A', '0', 'default', 'py-numpy_2', 'a'.repeat(64), '9lives'])
    assert.equal(isValidTag(t), true, t);
});

test('hostile tags are rejected with invalid_tag', () => {
  for (const t of HOSTILE_TAGS) {
    assert.equal(isValidTag(t), false, JSON.stringify(t));
    assert.throws(
      () => assertTag(t),
      (e: unknown) =>
        e instanceof ForkdError && e.code === 'invalid_tag' && !e.message.includes('\0') && !e.message.includes('\n'),
      JSON.stringify(t),
    );
  }
});

test('non-strings are rejected', () => {
  for (const v of [undefined, null, 1, {}, ['a']]) assert.throws(() => assertTag(v), ForkdError);
});

test('every snapshot path derivation validates before joining', () => {
  const paths = new DataPaths('/var/lib/forkd');
  for (const t of HOSTILE_TAGS) {
    assert.throws(() => paths.snapshotDir(t), ForkdError);
    assert.throws(() => paths.snapshotStagingDir(t, 'abcd'), ForkdError);
  }
  assert.equal(paths.snapshotDir('ok-tag'), '/var/lib/forkd/snapshots/ok-tag');
  assert.throws(() => paths.runDir('../../etc'), ForkdError);
});

test('the message says why', () => {
  assert.match(
    String(
      (() => {
        try {
          assertTag('a'.repeat(65));
        } catch (e) {
          return (e as Error).message;
        }
      })(),
    ),
    /65 characters/,
  );
  assert.match(
    String(
      (() => {
        try {
          assertTag('a/b');
        } catch (e) {
          return (e as Error).message;
        }
      })(),
    ),
    /slash/,
  );
});
