// Branch mid-task with the forkd SDK: do the expensive setup once in a sandbox, fork it into
// 3 children (one BRANCH snapshot, 3 restores), try one alternative in each, keep the best
// (its sandbox stays, the others are killed), and delete the branch snapshot when done.
//
//   FORKD_URL=... FORKD_TOKEN=... FORKD_SNAPSHOT=py node dist/examples/branch-explore.js
import { Sandbox } from 'forkd';

async function main(): Promise<void> {
  const snapshot = process.env.FORKD_SNAPSHOT ?? 'py';
  await using base = await Sandbox.create(snapshot, { timeoutMs: 600_000 }); // FORKD_URL / FORKD_TOKEN
  // The "expensive" shared state: a data file every alternative starts from.
  await base.files.write(
    '/root/data.txt',
    Array.from({ length: 1000 }, (_, i) => String((i * 7919) % 1000)).join('\n'),
  );
  const alternatives = ['sorted(d)[len(d)//2]', 'sum(d)//len(d)', 'max(set(d), key=d.count)'];
  const forks = await base.fork({ count: alternatives.length, timeoutMs: 600_000 });
  const tries = forks.filter((f): f is Sandbox => f instanceof Sandbox);
  const branch = tries[0] ? (await tries[0].getInfo()).snapshot : undefined;
  try {
    if (tries.length !== alternatives.length) throw new Error(`only ${tries.length} of the forks started`);
    const scored = await Promise.all(
      tries.map(async (sb, i) => {
        const code = `d = [int(x) for x in open('/root/data.txt').read().split()]\n${alternatives[i]!}`;
        const r = await sb.eval(code, { language: 'python' });
        if (r.error) throw new Error(`${sb.sandboxId}: ${r.error.message}`);
        return { sb, alternative: alternatives[i]!, score: Number(r.value) };
      }),
    );
    const best = scored.reduce((a, b) => (b.score > a.score ? b : a));
    for (const s of scored) if (s !== best) await s.sb.kill();
    console.log(
      JSON.stringify({
        branch,
        tried: scored.map((s) => ({ alternative: s.alternative, score: s.score })),
        kept: { id: best.sb.sandboxId, alternative: best.alternative, score: best.score },
      }),
    );
    await best.sb.kill(); // a real agent would keep working in it
  } finally {
    await Promise.all(tries.map((sb) => sb.kill()));
    if (branch) await base.controller.snapshots.delete(branch, { cascade: true }).catch(() => undefined);
  }
}

await main();
