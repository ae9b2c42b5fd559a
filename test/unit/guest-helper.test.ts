// The native guest agent builds static and warning-free with the image's own flags, and its
// protocol limits are the host's (src/protocol/limits.ts): the two sides must agree.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentSource, buildGuestAgent } from '../../src/image/guest-helper.js';
import { isForkdError } from '../../src/lib/errors.js';
import * as limits from '../../src/protocol/limits.js';
import { AGENT_PROTOCOL_VERSION } from '../../src/protocol/index.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'forkd-agent-build-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('buildGuestAgent', () => {
  void it('compiles a static binary with -Wall -Wextra -Werror', async () => {
    const out = join(dir, 'forkd-agent');
    await buildGuestAgent(out);
    assert.match(execFileSync('file', [out]).toString(), /statically linked/);
  });

  void it('reports a compiler failure as host_error with its stderr', async () => {
    const src = join(dir, 'broken.c');
    await writeFile(src, 'int main( {');
    await assert.rejects(
      buildGuestAgent(join(dir, 'x'), { sourcePath: src }),
      (err) => isForkdError(err, 'host_error') && /broken\.c/.test(err.message),
    );
  });

  void it('mirrors every protocol limit the host enforces', async () => {
    const native = join(await agentSource(), '..');
    const { readdir } = await import('node:fs/promises');
    let text = '';
    for (const f of await readdir(native)) if (/\.[ch]$/.test(f)) text += await readFile(join(native, f), 'utf8');
    const defines = new Map<string, string>();
    for (const m of text.matchAll(/^#define\s+([A-Z_]+)\s+(.+?)\s*(?:\/\*.*)?$/gm)) defines.set(m[1]!, m[2]!);
    const value = (name: string): number => {
      const raw = defines.get(name);
      assert.ok(raw !== undefined, `${name} is not #defined in src/guest/native`);
      // The C side writes products such as (1024 * 1024) or 64u; evaluate only digits and *.
      const expr = raw.replace(/[()uUlL]/g, '');
      assert.match(expr, /^[\d\s*+]+$/, `${name} = ${raw}`);
      return expr.split('+').reduce((sum, term) => sum + term.split('*').reduce((p, f) => p * Number(f.trim()), 1), 0);
    };
    for (const name of [
      'MAX_FRAME_BYTES',
      'FILE_CHUNK_BYTES',
      'STREAM_CHUNK_BYTES',
      'MAX_CONCURRENT_REQUESTS',
      'BACKGROUND_OUTPUT_BYTES',
      'MAX_BACKGROUND_PROCESSES',
      'MAX_EXEC_STDIN_BYTES',
      'MAX_FILE_BYTES',
      'MAX_LIST_ENTRIES',
      'MIN_IDENTITY_ENTROPY_BYTES',
      'MAX_IDENTITY_ENTROPY_BYTES',
    ] as const) {
      assert.equal(value(name), limits[name], `${name}: C and src/protocol/limits.ts differ`);
    }
    assert.equal(value('AGENT_PROTOCOL_VERSION'), AGENT_PROTOCOL_VERSION);
  });
});
