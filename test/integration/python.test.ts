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
