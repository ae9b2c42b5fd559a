// The hostile-tag corpus at the pack commands' tag surfaces (cli-tags.test.ts covers the
// others): each refused with exit 2 and one line, before any file or URL is touched.
// test-lane: host (no guest, nothing host-wide: scripts/run-tests.mjs runs it beside the guest suites)
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eachLimited, runCli } from '../helpers/env.js';
import { HOSTILE_TAGS } from '../helpers/corpus.js';

// NUL cannot travel in argv; the manifest unit test covers it.
const CORPUS = HOSTILE_TAGS.filter((t) => !t.includes('\0'));
// Nothing listens on port 1: a request would fail differently (exit 1), never with exit 2.
const URL = 'http://127.0.0.1:1/x.forkd.tar.zst';

const SURFACES: { name: string; args: (t: string) => string[] }[] = [
  { name: 'pack --tag', args: (t) => ['pack', `--tag=${t}`] },
  { name: 'unpack --tag', args: (t) => ['unpack', 'no-such.forkd.tar.zst', `--tag=${t}`] },
  { name: 'push --tag', args: (t) => ['push', `--tag=${t}`, URL] },
  { name: 'pull --tag', args: (t) => ['pull', URL, `--tag=${t}`] },
];

describe('hostile tags at the pack CLI surfaces', () => {
  let dataDir: string | undefined;
  after(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('each is refused with exit 2 and nothing is written', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'forkd-pack-tags-'));
    const dir = dataDir;
    const cases = SURFACES.flatMap((surface) => CORPUS.map((tag) => ({ surface, tag })));
    await eachLimited(cases, 3, async ({ surface, tag }) => {
      const r = await runCli([...surface.args(tag), '--data-dir', dir]);
      assert.equal(r.code, 2, `${surface.name} ${JSON.stringify(tag)}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, /invalid snapshot tag/, `${surface.name} ${JSON.stringify(tag)}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    });
    assert.deepEqual(await readdir(dataDir), []);
  });
});
