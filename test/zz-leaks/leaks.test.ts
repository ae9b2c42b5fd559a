// Runs last (the runner orders it after every other suite): the whole test run left nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findLeaks } from '../helpers/leaks.js';

test('no QEMU process, run dir, staging dir, netns, cgroup or link of ours remains', async () => {
  assert.deepEqual(await findLeaks(), []);
});
