// forkd-guestctl builds static and validates its input before any privileged call. Its
// ioctls and clock_settime are not run here: they would change the host.
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildGuestHelper } from '../../src/image/guest-helper.js';
import { isForkdError } from '../../src/lib/errors.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'forkd-guestctl-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('buildGuestHelper', () => {
  void it('compiles a static binary that checks its arguments', async () => {
    const out = join(dir, 'forkd-guestctl');
    await buildGuestHelper(out);
    assert.match(execFileSync('file', [out]).toString(), /statically linked/);
    const usage = spawnSync(out, []);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr.toString(), /usage/);
    const few = spawnSync(out, ['entropy'], { input: Buffer.alloc(10) });
    assert.equal(few.status, 2);
    assert.match(few.stderr.toString(), /10 entropy bytes, need at least 64/);
    const bad = spawnSync(out, ['settime', '12x']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr.toString(), /bad milliseconds/);
  });

  void it('reports a compiler failure as host_error with its stderr', async () => {
    const src = join(dir, 'broken.c');
    await writeFile(src, 'int main( {');
    await assert.rejects(
      buildGuestHelper(join(dir, 'x'), { sourcePath: src }),
      (err) => isForkdError(err, 'host_error') && /broken\.c/.test(err.message),
    );
  });
});
