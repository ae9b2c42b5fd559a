// Fan-out with the forkd SDK: spawn 10 sandboxes from a Python snapshot, compute a slice of
// the work in each (in parallel), gather the results, kill them all.
//
//   FORKD_URL=http://127.0.0.1:8889 FORKD_TOKEN=... FORKD_SNAPSHOT=py node dist/examples/fan-out.js
import { Controller, Sandbox } from 'forkd';

const N = 10;

async function main(): Promise<void> {
  const snapshot = process.env.FORKD_SNAPSHOT ?? 'py';
  const controller = new Controller(); // FORKD_URL / FORKD_TOKEN
  const { sandboxes } = await controller.sandboxes.spawn({ snapshot_tag: snapshot, n: N, ttl_secs: 600 });
  const children = sandboxes.map((info) => Sandbox.of(controller, info));
  try {
    const results = await Promise.all(
      children.map(async (sb, i) => {
        // Each child sums the squares of its own slice of 0..N*1000.
        const r = await sb.eval(`sum(x * x for x in range(${i * 1000}, ${(i + 1) * 1000}))`, { language: 'python' });
        if (r.error) throw new Error(`${sb.sandboxId}: ${r.error.name}: ${r.error.message}`);
        return { id: sb.sandboxId, slice: i, value: Number(r.value) };
      }),
    );
    const total = results.reduce((a, r) => a + r.value, 0);
    const expected = Array.from({ length: N * 1000 }, (_, x) => x * x).reduce((a, b) => a + b, 0);
    console.log(JSON.stringify({ children: results.length, total, expected, ok: total === expected }));
    if (total !== expected) process.exitCode = 1;
  } finally {
    await Promise.all(children.map((sb) => sb.kill()));
  }
}

await main();
