// Branch mid-task with the forkd SDK: do the expensive setup once in a sandbox, BRANCH it
// into a snapshot, spawn 3 children from that branch, try one alternative in each, keep the
// best (its sandbox stays, the others are killed), and delete the branch when done.
//
//   FORKD_URL=... FORKD_TOKEN=... FORKD_SNAPSHOT=py node dist/examples/branch-explore.js
//
// (Outside this repository, import from 'forkd' instead of the relative path.)
import { Controller, Sandbox } from '../src/sdk/index.js';

async function main(): Promise<void> {
  const snapshot = process.env.FORKD_SNAPSHOT ?? 'py';
  const controller = new Controller();
  await using base = await Sandbox.create({ snapshot, controller, ttlSecs: 600 });
  // The "expensive" shared state: a data file every alternative starts from.
  await base.files.write(
    '/root/data.txt',
    Array.from({ length: 1000 }, (_, i) => String((i * 7919) % 1000)).join('\n'),
  );
  const branch = await base.branch({ wait: true });
  const alternatives = ['sorted(d)[len(d)//2]', 'sum(d)//len(d)', 'max(set(d), key=d.count)'];
  const { sandboxes } = await controller.sandboxes.spawn({ snapshot_tag: branch.tag, n: alternatives.length });
  const tries = sandboxes.map((info) => Sandbox.of(controller, info));
  try {
    const scored = await Promise.all(
      tries.map(async (sb, i) => {
        const code = `d = [int(x) for x in open('/root/data.txt').read().split()]\n${alternatives[i]!}`;
        const r = await sb.eval(code, { language: 'python' });
        if (r.error) throw new Error(`${sb.id}: ${r.error.message}`);
        return { sb, alternative: alternatives[i]!, score: Number(r.value) };
      }),
    );
    const best = scored.reduce((a, b) => (b.score > a.score ? b : a));
    for (const s of scored) if (s !== best) await s.sb.kill();
    console.log(
      JSON.stringify({
        branch: branch.tag,
        pause_ms: branch.pause_ms,
        tried: scored.map((s) => ({ alternative: s.alternative, score: s.score })),
        kept: { id: best.sb.id, alternative: best.alternative, score: best.score },
      }),
    );
    await best.sb.kill(); // a real agent would keep working in it
  } finally {
    await Promise.all(tries.map((sb) => sb.kill()));
    await controller.snapshots.delete(branch.tag, { cascade: true }).catch(() => undefined);
  }
}

await main();
