// The one tag rule at every CLI surface that takes a tag or a name: each hostile value exits 2
// with a clear message and touches nothing on disk.
// test-lane: host (no guest, nothing host-wide: scripts/run-tests.mjs runs it beside the guest suites)
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eachLimited, runCli } from '../helpers/env.js';
import { HOSTILE_TAGS } from '../helpers/corpus.js';

/** Every file and dir under `root`, with sizes, to prove nothing changed. */
async function snapshotTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = join(dir, e.name);
      out.push(`${p}:${e.isDirectory() ? 'd' : (await stat(p)).size}`);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return out.sort();
}

// NUL cannot travel in argv; the unit test covers it at the API level.
const CORPUS = HOSTILE_TAGS.filter((t) => !t.includes('\0'));

const SURFACES: { name: string; args: (t: string) => string[] }[] = [
  { name: 'snapshot --tag', args: (t) => ['snapshot', `--tag=${t}`] },
  { name: 'snapshot --image', args: (t) => ['snapshot', '--tag', 'ok', `--image=${t}`] },
  { name: 'fork --tag', args: (t) => ['fork', `--tag=${t}`, '-n', '1'] },
  { name: 'rmi', args: (t) => ['rmi', '--', t] },
  { name: 'image build --name', args: (t) => ['image', 'build', `--name=${t}`] },
  { name: 'quickstart --tag', args: (t) => ['quickstart', `--tag=${t}`] },
];

describe('hostile tags at every CLI surface', () => {
  let dataDir: string;
  after(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('each is refused with exit 2 and nothing on disk changes', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'forkd-tags-'));
    const before = await snapshotTree(dataDir);
    const dir = dataDir;
    const cases = SURFACES.flatMap((surface) => CORPUS.map((tag) => ({ surface, tag })));
    await eachLimited(cases, 3, async ({ surface, tag }) => {
      const r = await runCli([...surface.args(tag), '--data-dir', dir]);
      assert.equal(r.code, 2, `${surface.name} ${JSON.stringify(tag)}: exit ${r.code}\n${r.stderr}`);
      assert.match(
        r.stderr,
        /invalid (snapshot tag|image name|tag)/,
        `${surface.name} ${JSON.stringify(tag)}: ${r.stderr}`,
      );
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    });
    assert.deepEqual(await snapshotTree(dataDir), before);
    // Nothing was created outside either: no stray dirs named after the hostile values.
    for (const name of ['etc', 'x', 'hidden']) await assert.rejects(stat(join(dataDir, '..', name, 'snapshot.json')));
  });
});
