// The reference workload: an image with python3-numpy, a snapshot whose warm Python worker
// has numpy imported, and forked children evaluating numpy code without re-importing it —
// through core and through the CLI (`forkd fork --eval --language python`).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSnapshot } from '../../src/core/snapshot-create.js';
import { disposeAll, forkChildren } from '../../src/core/fork.js';
import { removeSnapshot } from '../../src/core/snapshot-store.js';
import type { CoreContext } from '../../src/core/context.js';
import { ensureImage, runCli, testCore, uniqueTag } from '../helpers/env.js';
import { findLeaks } from '../helpers/leaks.js';

describe('python3-numpy image: warm eval in forked children', () => {
  let core: CoreContext;
  const tag = uniqueTag('it-py');

  before(async () => {
    const image = await ensureImage('numpy');
    assert.deepEqual(image.pythonPreload, ['numpy']);
    core = await testCore();
    await createSnapshot(core, { tag, image: 'numpy', memMiB: 512, vcpus: 1, warmup: [], bootTimeoutMs: 180_000 });
  });

  after(async () => {
    await removeSnapshot(core.paths, tag).catch(() => undefined);
    assert.deepEqual(await findLeaks(), []);
  });

  test('numpy.zeros(5).tolist() in a forked child, with state kept across calls', async () => {
    const { children, failures } = await forkChildren(core, { tag, n: 1 });
    try {
      assert.deepEqual(failures, []);
      const c = children[0]!;
      const r = await c.agent.eval({ code: 'numpy.zeros(5).tolist()', language: 'python' });
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      assert.deepEqual(r.value, [0, 0, 0, 0, 0]);
      // numpy came from the snapshot: the worker did not import it again in this child.
      const mods = await c.agent.eval({
        code: 'import sys\n"numpy" in sys.modules and int(np.arange(4).sum())',
        language: 'python',
      });
      assert.equal(mods.value, 6);
      await c.agent.eval({ code: 'acc = [1, 2]', language: 'python' });
      const state = await c.agent.eval({ code: 'print("len", len(acc)); acc + [3]', language: 'python' });
      assert.deepEqual(state.value, [1, 2, 3]);
      assert.equal(state.stdout, 'len 2\n');
      const err = await c.agent.eval({ code: '1/0', language: 'python' });
      assert.equal(err.error?.name, 'ZeroDivisionError');
      const exec = await c.agent.exec({
        argv: ['python3', '-c', 'import numpy; print(numpy.__version__)'],
        timeoutMs: 60_000,
      });
      assert.equal(exec.exitCode, 0, exec.stderr.toString());
      assert.match(exec.stdout.toString(), /^\d+\.\d+/);
    } finally {
      await disposeAll(children);
    }
  });

  test('3 children of one snapshot draw different random values in Node and Python', async () => {
    // Python's `random` and numpy's global generator were seeded when the parent imported them,
    // and V8's own Math.random state when the parent's worker started: every child holds the
    // same state and would repeat its siblings' draws without the reseed that follows identity.
    const { children, failures } = await forkChildren(core, { tag, n: 3 });
    try {
      assert.deepEqual(failures, []);
      const draws = await Promise.all(
        children.map(async (c) => {
          const js = await c.agent.eval({
            code: "[require('crypto').randomBytes(16).toString('hex'), Math.random()]",
          });
          const py = await c.agent.eval({
            code: 'import random\n[random.random(), numpy.random.rand()]',
            language: 'python',
          });
          assert.equal(js.error, undefined, JSON.stringify(js.error));
          assert.equal(py.error, undefined, JSON.stringify(py.error));
          const [bytes, mathRandom] = js.value as [string, number];
          const [pyRandom, npRandom] = py.value as [number, number];
          return { bytes, mathRandom, pyRandom, npRandom };
        }),
      );
      for (const key of ['bytes', 'mathRandom', 'pyRandom', 'npRandom'] as const) {
        assert.equal(
          new Set(draws.map((d) => d[key])).size,
          3,
          `${key} repeats across children: ${JSON.stringify(draws)}`,
        );
      }
    } finally {
      await disposeAll(children);
    }
  });

  test('forkd fork --eval --language python prints each child value', async () => {
    const r = await runCli([
      'fork',
      '--tag',
      tag,
      '-n',
      '2',
      '--eval',
      'numpy.zeros(5).tolist()',
      '--language',
      'python',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { ready: number; children: { output: { value: unknown; ok: boolean } }[] };
    assert.equal(report.ready, 2);
    for (const c of report.children) {
      assert.equal(c.output.ok, true);
      assert.deepEqual(c.output.value, [0, 0, 0, 0, 0]);
    }
  });
});
