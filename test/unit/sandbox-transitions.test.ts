// The sandbox lifecycle table (src/core/state/transitions.ts) and its enforcement by the one
// writer of sandbox rows, StateStore.updateSandbox, on a real SQLite file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SANDBOX_STATES, StateStore, type SandboxRow } from '../../src/core/state/store.js';
import { assertTransition, SANDBOX_TRANSITIONS } from '../../src/core/state/transitions.js';
import { ForkdError } from '../../src/lib/errors.js';

test('transition table: every state listed, stopped and failed are final', () => {
  assert.deepEqual(Object.keys(SANDBOX_TRANSITIONS).sort(), [...SANDBOX_STATES].sort());
  assert.deepEqual(SANDBOX_TRANSITIONS.stopped, []);
  assert.deepEqual(SANDBOX_TRANSITIONS.failed, []);
  assert.doesNotThrow(() => assertTransition('sb-x', 'creating', 'running'));
  assert.throws(
    () => assertTransition('sb-x', 'failed', 'running'),
    (e: unknown) => e instanceof ForkdError && e.code === 'internal' && /from failed to running/.test(e.message),
  );
});

test('StateStore.updateSandbox goes through the table', () => {
  const dir = mkdtempSync(join(tmpdir(), 'forkd-transitions-'));
  const store = StateStore.open(dir);
  try {
    const row: SandboxRow = {
      id: 'sb-aaaaaaaaaaaaaaaa',
      snapshotTag: 'base',
      state: 'creating',
      pid: null,
      accel: 'tcg',
      createdAt: 't',
      updatedAt: 't',
      expiresAt: null,
      memoryLimitMiB: null,
      cpuLimit: null,
      pidsLimit: null,
      perChildNetns: false,
      egress: null,
      metadata: {},
      reason: null,
    };
    store.insertSandbox(row);
    store.updateSandbox(row.id, { state: 'running', pid: 7 });
    store.updateSandbox(row.id, { pid: 8 }); // no state change: nothing to check
    store.updateSandbox(row.id, { state: 'stopping', reason: 'deleting' });
    store.updateSandbox(row.id, { state: 'stopped' });
    assert.throws(() => store.updateSandbox(row.id, { state: 'running' }), /from stopped to running/);
    assert.equal(store.getSandbox(row.id)?.state, 'stopped', 'the refused change wrote nothing');
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
