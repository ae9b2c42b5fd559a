// The capability probe's pure parts and the spawn refusal; node keys in sandbox ids.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import {
  assertFeatures,
  effectiveFromStatus,
  featuresAsked,
  parseCapMask,
  type HostCapabilities,
} from '../../src/host/capabilities.js';
import { isForkdError } from '../../src/lib/errors.js';
import { isSandboxId, newSandboxId, nodeKeyOf, nodeKeyOfId, NODE_KEY_PATTERN } from '../../src/lib/ids.js';

test('CapEff masks become capability names', () => {
  assert.deepEqual(parseCapMask('0000000000000000'), []);
  assert.deepEqual(parseCapMask('00000000000000c0'), ['CAP_SETGID', 'CAP_SETUID']);
  // The unit's set: setuid setgid chown fowner dac_override kill net_admin sys_admin.
  const mask = [0, 1, 3, 5, 6, 7, 12, 21].reduce((m, b) => m | (1n << BigInt(b)), 0n).toString(16);
  assert.deepEqual(parseCapMask(mask).sort(), [
    'CAP_CHOWN',
    'CAP_DAC_OVERRIDE',
    'CAP_FOWNER',
    'CAP_KILL',
    'CAP_NET_ADMIN',
    'CAP_SETGID',
    'CAP_SETUID',
    'CAP_SYS_ADMIN',
  ]);
  const status = 'Name:\tnode\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000003000\n';
  assert.deepEqual(effectiveFromStatus(status), ['CAP_NET_ADMIN', 'CAP_NET_RAW']);
  assert.deepEqual(effectiveFromStatus('no such line'), []);
});

const caps = (netns: boolean, memory: boolean): HostCapabilities => ({
  effective: [],
  missing: netns ? [] : ['CAP_NET_ADMIN'],
  root: true,
  cgroupMode: 'v2',
  probedAt: new Date(0).toISOString(),
  features: {
    memory_limit: { available: memory, reason: memory ? null : 'the memory cgroup hierarchy is not writable' },
    cpu_limit: { available: true, reason: null },
    pids_limit: { available: true, reason: null },
    per_child_netns: { available: netns, reason: netns ? null : 'this process lacks CAP_NET_ADMIN' },
  },
});

test('a spawn asking for an unavailable feature is a 503 feature_unavailable naming it', () => {
  assert.deepEqual(featuresAsked({ memoryMiB: 128, network: { egress: 'deny' } }), ['memory_limit', 'per_child_netns']);
  assert.deepEqual(featuresAsked({}), []);
  assertFeatures(['per_child_netns', 'memory_limit'], caps(true, true));
  assertFeatures(['per_child_netns'], undefined); // not probed: not refused
  assert.throws(
    () => assertFeatures(['cpu_limit', 'per_child_netns'], caps(false, true)),
    (e: unknown) =>
      isForkdError(e, 'feature_unavailable') &&
      /per_child_netns.*CAP_NET_ADMIN/.test(e.message) &&
      !/cpu_limit:/.test(e.message),
  );
  assert.throws(
    () => assertFeatures(['memory_limit'], caps(true, false)),
    (e: unknown) => isForkdError(e, 'feature_unavailable') && /memory_limit/.test(e.message),
  );
});

test('node keys: 3 base32 characters from the node name, at the front of every id it makes', () => {
  const key = nodeKeyOf('node-a');
  assert.match(key, NODE_KEY_PATTERN);
  assert.equal(nodeKeyOf('node-a'), key, 'deterministic');
  assert.notEqual(nodeKeyOf('node-b'), key);
  for (let i = 0; i < 200; i++) {
    const id = newSandboxId(key);
    assert.ok(isSandboxId(id), id);
    assert.equal(nodeKeyOfId(id), key);
  }
  assert.ok(isSandboxId(newSandboxId()));
  assert.throws(() => newSandboxId('AB1'));
});
