// The local CLI end to end: snapshot, fork with --exec (human and --json output, exit codes),
// images, rmi refusing while in use is covered by core; here: the documented outputs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ensureImage, runCli, uniqueTag } from '../helpers/env.js';
import { findLeaks } from '../helpers/leaks.js';

describe('forkd CLI in local mode', () => {
  const tag = uniqueTag('it-cli');

  before(async () => {
    await ensureImage('default');
    const r = await runCli(['snapshot', '--tag', tag, '--warmup', 'echo ready > /root/state']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^snapshot ${tag}: image=default mem=512 MiB`));
  });

  after(async () => {
    await runCli(['rmi', tag]);
    assert.deepEqual(await findLeaks(), []);
  });

  test('snapshot refuses an existing tag', async () => {
    const r = await runCli(['snapshot', '--tag', tag]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists/);
  });

  test('fork --exec prints each child output and a timing summary', async () => {
    const r = await runCli(['fork', '--tag', tag, '-n', '3', '--exec', 'cat /root/state; echo "$0 $1" | tr a-z A-Z']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((r.stdout.match(/^ready$/gm) ?? []).length, 3, r.stdout);
    assert.match(r.stdout, new RegExp(`fork ${tag}: 3/3 ready, 3 alive`));
    assert.match(r.stdout, /first ready \d+ ms, last ready [\d.]+ m?s, per-child p50/);
    assert.match(r.stdout, /PSS per child avg [\d.]+ MiB/);
  });

  test('fork --json reports each child; a failing command exits 1', async () => {
    const r = await runCli(['fork', '--tag', tag, '-n', '2', '--exec', 'echo $(hostname); exit 7', '--json']);
    assert.equal(r.code, 1);
    const report = JSON.parse(r.stdout) as {
      ready: number;
      children: { id: string; output: { exitCode: number; stdout: string } }[];
    };
    assert.equal(report.ready, 2);
    for (const c of report.children) {
      assert.equal(c.output.exitCode, 7);
      assert.equal(c.output.stdout.trim(), c.id);
    }
  });

  test('images lists the snapshot; rmi of an unknown tag fails clearly', async () => {
    const r = await runCli(['images', '--json']);
    assert.equal(r.code, 0);
    const rows = JSON.parse(r.stdout) as { tag: string; memMiB: number; inUseBy: string[] }[];
    const row = rows.find((x) => x.tag === tag);
    assert.equal(row?.memMiB, 512);
    assert.deepEqual(row?.inUseBy, []);
    const missing = await runCli(['rmi', 'no-such-snapshot']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /snapshot no-such-snapshot not found/);
    const bad = await runCli(['fork', '--tag', tag, '-n', '0']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--n must be from 1 to 1000/);
  });
});
