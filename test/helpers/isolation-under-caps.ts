// Run as a child process under a reduced capability set (setpriv --bounding-set ...): does
// what a spawn with every isolation option does on the host, with a stand-in for QEMU
// (`sleep`, started through the same wrapper QEMU is: inside the sandbox's namespace as the VM
// user) — the cgroup with memory, CPU and pids limits, the namespace with its veth, tap and
// nftables rules, the process moved into the cgroup. Prints one JSON line with what it saw;
// exits 1 with the error otherwise. Used by test/integration/systemd-unit.test.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { loadLocalConfig } from '../../src/lib/config.js';
import { newSandboxId } from '../../src/lib/ids.js';
import { messageOf } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import { createCoreContext } from '../../src/core/context.js';
import { prepareIsolation, validateIsolationOptions } from '../../src/core/isolation.js';
import { netnsPath } from '../../src/host/net-exec.js';

async function main(): Promise<void> {
  const ctx = await createCoreContext(loadLocalConfig({ dataDir: process.argv[2] ?? '/tmp' }), silentLogger);
  const id = newSandboxId();
  const iso = await prepareIsolation(
    ctx,
    id,
    validateIsolationOptions({ memoryMiB: 128, cpuLimit: 0.5, pidsLimit: 64, network: { egress: 'deny' } }, 'deny'),
  );
  let child: ChildProcess | undefined;
  try {
    // The stand-in says which namespace and user it runs as itself (reading another user's
    // /proc/<pid>/ns needs CAP_SYS_PTRACE, which the daemon does not have), then becomes sleep.
    const script = 'readlink /proc/self/ns/net; id -u; exec sleep 30';
    const argv = [...(iso.wrapper ?? []), '/bin/sh', '-c', script];
    child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = child.pid!;
    await iso.onSpawned(pid);
    let out = '';
    child.stdout!.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from the stand-in: ${out}`)), 10_000);
      child!.stdout!.on('data', (c: string) => {
        out += c;
        if (out.split('\n').length > 2) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const [nsLink, uidText] = out.split('\n');
    const sameNs = nsLink === `net:[${(await stat(netnsPath(iso.netns!))).ino}]`;
    const memDir = iso.cgroup.memoryDir;
    const procs = memDir ? await readFile(`${memDir}/cgroup.procs`, 'utf8') : '';
    // What QEMU's supervisor does right after the spawn (vmm/qemu-process.ts).
    const oomAdj = await writeFile(`/proc/${pid}/oom_score_adj`, '500').then(
      () => true,
      (e: unknown) => messageOf(e),
    );
    process.stdout.write(
      `${JSON.stringify({ id, netns: iso.netns, uid: Number(uidText), sameNs, inCgroup: procs.split('\n').includes(String(pid)), oomAdj })}\n`,
    );
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    await iso.dispose();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${messageOf(err)}\n`);
    process.exit(1);
  },
);
