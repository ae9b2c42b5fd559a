import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('../../src/guest/kernel-random.js', import.meta.url));

test('crypto entry points read the kernel CRNG once installed', () => {
  // In a separate process: the patch is process-wide by design.
  const script = `
    import { installKernelRandom } from ${JSON.stringify(MODULE)};
    import crypto from 'node:crypto';
    import { createRequire } from 'node:module';
    installKernelRandom();
    const req = createRequire(import.meta.url)('crypto');
    const a = req.randomBytes(32), b = crypto.randomBytes(32);
    const uuid = req.randomUUID();
    const view = crypto.getRandomValues(new Uint32Array(4));
    const filled = req.randomFillSync(Buffer.alloc(16), 4, 8);
    crypto.randomBytes(8, (err, buf) => {
      console.log(JSON.stringify({ a: a.toString('hex'), b: b.toString('hex'), uuid, view: [...view], filled: [...filled], cb: buf.length, err }));
    });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    a: string;
    b: string;
    uuid: string;
    view: number[];
    filled: number[];
    cb: number;
    err: unknown;
  };
  assert.equal(out.a.length, 64);
  assert.notEqual(out.a, out.b);
  assert.match(out.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(out.view.some((x) => x !== 0));
  assert.deepEqual(out.filled.slice(0, 4), [0, 0, 0, 0], 'bytes before the offset untouched');
  assert.deepEqual(out.filled.slice(12), [0, 0, 0, 0], 'bytes after offset+size untouched');
  assert.equal(out.cb, 8);
  assert.equal(out.err, null);
});
