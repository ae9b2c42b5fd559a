// E2B code, unmodified, run against forkd: the only difference from E2B's cloud is the
// environment it runs in.
//
//   E2B_API_URL=http://127.0.0.1:8890 E2B_SANDBOX_URL=http://127.0.0.1:8890 \
//   E2B_API_KEY=$(cat /etc/forkd/token) E2B_TEMPLATE=py node dist/examples/e2b-compat.js
//
// (forkd-controller serve --e2b-bind 127.0.0.1:8890; a template is a forkd snapshot tag.)
import { Sandbox } from 'e2b';

async function main(): Promise<void> {
  const template = process.env.E2B_TEMPLATE ?? 'base';
  const sandbox = await Sandbox.create(template, { metadata: { example: 'e2b-compat' } });
  let result: Record<string, unknown>;
  try {
    const echo = await sandbox.commands.run('echo hello from the sandbox');
    await sandbox.files.write('/root/notes.txt', 'notes');
    const file = await sandbox.files.read('/root/notes.txt');
    // Forks start from the sandbox as it is now, files and all, and then go their own way.
    const forks = await sandbox.fork({ count: 2 });
    const seen = await Promise.all(
      forks.map(async (fork, i) => {
        if (fork instanceof Error) throw fork;
        try {
          return (await fork.commands.run(`echo "fork ${i}" > /root/notes.txt; cat /root/notes.txt`)).stdout.trim();
        } finally {
          await fork.kill();
        }
      }),
    );
    result = { echo: echo.stdout, file, forks: seen };
  } finally {
    await sandbox.kill();
  }
  const left = await Sandbox.list({ query: { metadata: { example: 'e2b-compat' } } }).nextItems();
  console.log(JSON.stringify({ ...result, left: left.length }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
