// `npm run bench`: runs the benchmarks side by side in one process and commits-ready results
// to bench/results/<name>.json and .md, each stating the machine and the accelerator.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createSnapshot } from '../src/core/snapshot-create.js';
import { removeSnapshot } from '../src/core/snapshot-store.js';
import { buildImage } from '../src/image/build.js';
import { loadLocalConfig } from '../src/lib/config.js';
import { createLogger } from '../src/lib/log.js';
import { createCoreContext } from '../src/core/context.js';
import { machineInfo, machineMarkdown } from './machine.js';
import { forkBench, forkChartSvg, forkReport, type ForkBenchResult } from './fork-bench.js';
import { agentBench, agentMarkdown } from './agent-bench.js';
import { controllerBench, controllerMarkdown } from './controller-bench.js';
import { netnsBench, netnsMarkdown } from './netns-bench.js';
import { packBench, packMarkdown } from './pack-bench.js';
import { branchBench, branchMarkdown } from './branch-bench.js';
import { tuningBench, tuningMarkdown } from './tuning-bench.js';
import { multinodeBench, multinodeMarkdown } from './multinode-bench.js';
import { parkedBench, parkedMarkdown } from './parked-bench.js';
import { bootBench, bootMarkdown } from './boot-bench.js';

/** Measurements made by hand while choosing the tuning (restore-only runs, HMP info jit). */
const TUNING_NOTES = [
  'How each choice was made (2026-12-01, this machine, a loaded one: figures are relative, TB counts are the robust part):',
  '- A restored child translated ~5,000 blocks in the 300 ms after restore with no host traffic at all. Profiled with',
  "  `-d in_asm` against the guest's /proc/kallsyms: IPv6 autoconfiguration (DAD, router solicitations, MLD), the",
  '  self-announce after migration (gratuitous ARP, link notifications), RCU, PSI, scheduler and timer paths.',
  '- ipv6.disable=1: 8,400 -> 7,800 TBs at identity. mitigations=off psi=0 cgroup_disable=memory: -> 7,400.',
  '  announce-rounds=0 on restore: post-restore burst 4,800 -> 2,900-3,500 TBs. lsm=capability nowatchdog',
  '  nosoftlockup: -> ~6,100 TBs at identity.',
  '- The agent printing one line per identity to the serial console cost ~1/4 of identity (n_tty, 8250 driver code',
  '  translated in every child): routine agent logs are now --verbose only.',
  '- THP: QEMU madvises its TCG buffer for huge pages; at N=10 the anonymous mappings held 6.0 MiB of AnonHugePages.',
  '  PR_SET_THP_DISABLE (forkd-nothp): PSS per idle child 22.7 -> 20.0 MiB, CPU unchanged.',
  '- tb-size stays 16 MiB: no TB flush on the readiness path or in the first exec (the flush count is 1: the one',
  '  QEMU does when the incoming state loads).',
  '- Letting the parent idle 4 s before the snapshot saved ~400 TBs: not worth 4 s per snapshot.',
  '- `-cpu` model (2026-12-02, this bench run twice, a wrapper swapping `-cpu max` for `-cpu qemu64` in every QEMU,',
  '  snapshots included): tuned rows 5,466-5,600 -> 5,158-5,214 TBs at identity (-6%), CPU at ready 130 -> 120 ms,',
  '  first exec 190 -> 180 ms.',
  '- `-cpu` again (2026-12-02, Intel Xeon host; a snapshot per model, 7 single restores each, 2 rounds in mirrored',
  '  order): `max` exposes AVX/AVX2/FMA/VAES to the guest (QEMU 7.2 TCG emulates them), so glibc and the kernel pick',
  '  their AVX2 routines. TBs at identity: max 5,591 / 5,623, max without the AVX family 5,491 / 5,606, qemu64',
  '  5,499 / 4,994; CPU at ready 70 / 120, 90 / 90 and 100 / 110 ms; first exec 100 / 160, 120 / 150, 140 / 150 ms.',
  '  The spread between the two rounds of one model (max: 70 vs 120 ms) is larger than between models: no model',
  '  measurably cheaper. Decision: `-cpu max` stays (qemu64 would take SSSE3/SSE4/AVX from every program in the',
  '  guest for no measured gain).',
].join('\n');

/** Measured by hand while choosing (initcall_debug console logs). */
const BOOT_NOTES = [
  'How it was found (2026-12-02, this machine, the kernel booted with `initcall_debug printk.time=1 loglevel=8`):',
  '- Without an RTC, two stalls: 2.3 s before "Unable to read current time from RTC" (timekeeping_init reading the',
  '  wall clock, mc146818_get_time polling for up to a second at a time) and `cmos_init` 2.6 s ("rtc_cmos: broken',
  '  or not accessible"). These are timed waits, not translation work: a faster host does not shorten them (under',
  '  KVM, where kvmclock gives the wall clock, at least the rtc_cmos probe would remain; not measured here). With',
  '  `rtc=on` both are gone (`cmos_init` 8 ms) and the kernel reaches /init in ~3.6 s instead of ~8.6 s (under load,',
  '  logging).',
  '- The next largest initcalls with an RTC: the crypto self-tests (`crypto_algapi_init` ~0.5 s, `crypto_kdf108_init`',
  '  ~0.5 s), `init_kprobe_trace` 0.2-0.5 s, `inet_init` 0.15 s, loading the built-in X.509 certificates 0.1 s.',
  '- `cryptomgr.notests=1` (skip the self-tests), three runs of this bench: the boot 0.25-0.5 s shorter; in two runs',
  '  each child of such a snapshot translated ~800 more blocks before its agent answered (6,211 and 6,298 against',
  "  ~5,500) and held 0.6 MiB more PSS, in the third (the table) as many as the others. A child's cost weighs more",
  "  than a parent's boot, so it is not adopted until a run shows the children unaffected every time.",
].join('\n');

const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const dataDir = process.env.FORKD_BENCH_DATA_DIR ?? process.env.FORKD_TEST_DATA_DIR ?? '/var/lib/forkd-test';
  const core = await createCoreContext(loadLocalConfig({ dataDir }), createLogger({ level: 'error' }));
  const machine = machineInfo(core);
  await mkdir(RESULTS, { recursive: true });
  await buildImage({ dataDir, name: 'default', packages: [], onProgress: log });
  // The same `numpy` image as the test suite's (python3-numpy + Node), so neither rebuilds it.
  const numpyImage = (): Promise<unknown> =>
    buildImage({ dataDir, name: 'numpy', packages: ['python3-numpy'], runtimes: ['node'], onProgress: log });

  if (only.length === 0 || only.includes('fork')) {
    const tag = `bench-fork-${Date.now().toString(36)}`;
    const pyTag = `bench-forkpy-${Date.now().toString(36)}`;
    log(`snapshots ${tag} (default) and ${pyTag} (numpy)`);
    await numpyImage();
    await createSnapshot(core, { tag, image: 'default', memMiB: 512, vcpus: 1, warmup: [], bootTimeoutMs: 300_000 });
    await createSnapshot(core, {
      tag: pyTag,
      image: 'numpy',
      memMiB: 512,
      vcpus: 1,
      warmup: [],
      bootTimeoutMs: 300_000,
    });
    try {
      const previous = JSON.parse(
        await readFile(`${RESULTS}fork-before-native-agent.json`, 'utf8'),
      ) as ForkBenchResult & {
        machine: { date: string };
      };
      const before = { date: previous.machine.date, rows: previous.rows, speedupN1: previous.speedupN1 };
      // This bench's previous run (bench/results/fork.json as it is on disk), read before it is overwritten.
      const lastRun = await readFile(`${RESULTS}fork.json`, 'utf8')
        .then((text) => JSON.parse(text) as ForkBenchResult & { machine: { date: string } })
        .then((l) => ({ date: l.machine.date, rows: l.rows, speedupN1: l.speedupN1 }))
        .catch(() => undefined);
      const result = await forkBench(core, {
        tag,
        image: 'default',
        memMiB: 512,
        ns: [1, 10, 50],
        coldBoots: 3,
        windows: [2, 4, 8, 50],
        log,
        python: { tag: pyTag, image: 'numpy' },
      });
      await writeFile(
        `${RESULTS}fork.json`,
        `${JSON.stringify({ machine, ...result, previous: before, lastRun }, null, 2)}\n`,
      );
      await writeFile(`${RESULTS}fork.svg`, forkChartSvg(result, before));
      await writeFile(`${RESULTS}fork.md`, forkReport(machineMarkdown(machine), result, before, lastRun));
      log('wrote bench/results/fork.{json,md,svg}');
    } finally {
      await removeSnapshot(core.paths, tag).catch(() => undefined);
      await removeSnapshot(core.paths, pyTag).catch(() => undefined);
    }
  }

  if (only.length === 0 || only.includes('boot')) {
    const rows = await bootBench(core, { image: 'default', memMiB: 512, rounds: 5, childRuns: 7, log });
    await writeFile(`${RESULTS}boot.json`, `${JSON.stringify({ machine, rows }, null, 2)}\n`);
    await writeFile(
      `${RESULTS}boot.md`,
      `# Parent boot: the RTC, and what else a cold boot spends\n\n${machineMarkdown(machine)}\n- Image: default, 512 MiB, 1 vCPU. Cold boots: ${rows[0]?.coldBootMs.length ?? 0} rounds, the variants alternating (mirrored order). Each variant also made one snapshot (its create time) whose children were restored one at a time (medians of 7), as in child-tuning.md.\n- RTC: QEMU's microvm machine with \`rtc=on\` (an mc146818 on the ISA bus) or \`rtc=off\`. Snapshots record it (\`layout.rtc\`); those made before it existed have none and keep none.\n\n${bootMarkdown(rows)}\n\n${BOOT_NOTES}\n`,
    );
    log('wrote bench/results/boot.{json,md}');
  }

  if (only.length === 0 || only.includes('tuning')) {
    const rows = await tuningBench(core, { image: 'default', runs: 7, log });
    await writeFile(`${RESULTS}child-tuning.json`, `${JSON.stringify({ machine, rows }, null, 2)}\n`);
    await writeFile(
      `${RESULTS}child-tuning.md`,
      `# Child tuning under TCG\n\n${machineMarkdown(machine)}\n- Image: default, 512 MiB, 1 vCPU. Each row: its own snapshot (the kernel command line is part of a snapshot), children restored one at a time, medians of the runs; TBs = translated blocks (HMP \`info jit\`), counted when the agent answered identity.\n- \`tuned\`: the kernel arguments of TCG_CHILD_TUNING (src/vmm/qemu-args.ts); \`untuned\`: without them. Both rows: ipv6.disable=1, no self-announce after restore, THP off for QEMU (forkd-nothp), an agent that logs nothing routine to the console.\n\n${tuningMarkdown(rows)}\n\n${TUNING_NOTES}\n`,
    );
    log('wrote bench/results/child-tuning.{json,md}');
  }

  if (only.length === 0 || only.includes('pack')) {
    const tag = `bench-pack-${Date.now().toString(36)}`;
    log(`snapshot ${tag}`);
    await createSnapshot(core, { tag, image: 'default', memMiB: 512, vcpus: 1, warmup: [], bootTimeoutMs: 300_000 });
    try {
      const result = await packBench(core, { tag, memMiB: 512, runs: 3, log });
      await writeFile(`${RESULTS}pack.json`, `${JSON.stringify({ machine, ...result }, null, 2)}\n`);
      await writeFile(
        `${RESULTS}pack.md`,
        `# Pack and unpack a snapshot\n\n${machineMarkdown(machine)}\n${packMarkdown(result)}\n`,
      );
      log('wrote bench/results/pack.{json,md}');
    } finally {
      await removeSnapshot(core.paths, tag).catch(() => undefined);
    }
  }

  if (only.length === 0 || only.includes('netns')) {
    const tag = `bench-netns-${Date.now().toString(36)}`;
    log(`snapshot ${tag}`);
    await createSnapshot(core, { tag, image: 'default', memMiB: 512, vcpus: 1, warmup: [], bootTimeoutMs: 300_000 });
    try {
      const result = await netnsBench(core, { tag, n: 50, log });
      await writeFile(`${RESULTS}netns.json`, `${JSON.stringify({ machine, ...result }, null, 2)}\n`);
      await writeFile(
        `${RESULTS}netns.md`,
        `# Fork with and without per-sandbox isolation\n\n${machineMarkdown(machine)}\n- Image: default, 512 MiB guest RAM, 1 vCPU; forks of 50 children of one snapshot, one after the other in the same run, each mode twice (order none, cgroup, cgroup+netns, then reversed).\n- \`none\`: no cgroup, no namespace (the NIC on an unconnected hub). \`cgroup\`: each QEMU in its own memory/cpu/pids cgroup (memoryMiB 1024, so no limit bites). \`cgroup+netns\`: plus its own network namespace (tap, veth to the bridge forkd-br0, nftables egress \`allow\` + NAT), set up before QEMU starts.\n- "Answers" = the child's agent replied to \`identity\`.\n\n${netnsMarkdown(result)}\n`,
      );
      log('wrote bench/results/netns.{json,md}');
    } finally {
      await removeSnapshot(core.paths, tag).catch(() => undefined);
    }
  }

  if (only.length === 0 || only.includes('controller')) {
    const tag = `bench-ctl-${Date.now().toString(36)}`;
    log(`snapshot ${tag}`);
    await createSnapshot(core, { tag, image: 'default', memMiB: 512, vcpus: 1, warmup: [], bootTimeoutMs: 300_000 });
    try {
      const result = await controllerBench(core, { tag, ns: [1, 50], repeatsN1: 3, log });
      await writeFile(`${RESULTS}controller.json`, `${JSON.stringify({ machine, ...result }, null, 2)}\n`);
      await writeFile(
        `${RESULTS}controller.md`,
        `# Spawn over REST (forkd-controller) vs local mode\n\n${machineMarkdown(machine)}\n- Image: default, 512 MiB guest RAM, 1 vCPU; the daemon on 127.0.0.1 (plain HTTP, no token) in a separate process.\n- REST: \`POST /v1/sandboxes {n}\` answers once every child's agent answered \`identity\`; then \`POST /v1/sandboxes/{id}/ping\` for each. Local: \`forkChildren\` in the bench process, then \`agent.ping()\` for each.\n\n${controllerMarkdown(result)}\n`,
      );
      log('wrote bench/results/controller.{json,md}');
    } finally {
      await removeSnapshot(core.paths, tag).catch(() => undefined);
    }
  }

  if (only.length === 0 || only.includes('parked')) {
    const tag = `bench-park-${Date.now().toString(36)}`;
    log(`snapshot ${tag} (default)`);
    await createSnapshot(core, { tag, image: 'default', memMiB: 512, vcpus: 1, warmup: [], bootTimeoutMs: 300_000 });
    try {
      const result = await parkedBench(core, { tag, rounds: 10, log });
      await writeFile(`${RESULTS}parked.json`, `${JSON.stringify({ machine, ...result }, null, 2)}\n`);
      await writeFile(
        `${RESULTS}parked.md`,
        `# One child with and without a parked VMM\n\n${machineMarkdown(machine)}\n- Image: default (busybox + the native agent), 512 MiB guest RAM, 1 vCPU, no isolation (parked VMMs serve only spawns without limits or netns).\n- "Ready" = the child's agent replied to \`identity\`, timed from the spawn (for a parked child: from taking it).\n- Other work (builds, host-only tests) may have shared the 2 cores; the two kinds alternate round by round, so both met the same conditions.\n\n${parkedMarkdown(result)}\n`,
      );
      log('wrote bench/results/parked.{json,md}');
    } finally {
      await removeSnapshot(core.paths, tag).catch(() => undefined);
    }
  }

  if (only.length === 0 || only.includes('multinode')) {
    const result = await multinodeBench({ runs: 10, burst: 12, log });
    await writeFile(`${RESULTS}multinode.json`, `${JSON.stringify({ machine, ...result }, null, 2)}\n`);
    await writeFile(
      `${RESULTS}multinode.md`,
      `# Many hosts: a gateway vs straight to a node\n\n${machineMarkdown(machine)}\n${multinodeMarkdown(result)}\n`,
    );
    log('wrote bench/results/multinode.{json,md}');
  }

  if (only.length === 0 || only.includes('branch')) {
    // FORKD_BENCH_BRANCH_MIB=512 skips the 1.5 GiB guest (slow under TCG).
    const sizes = (process.env.FORKD_BENCH_BRANCH_MIB ?? '512,1536').split(',').map(Number);
    const tags = sizes.map((memMiB) => ({ tag: `bench-br${memMiB}-${Date.now().toString(36)}`, memMiB }));
    try {
      for (const t of tags) {
        log(`snapshot ${t.tag} (${t.memMiB} MiB)`);
        await createSnapshot(core, {
          tag: t.tag,
          image: 'default',
          memMiB: t.memMiB,
          vcpus: 1,
          warmup: [],
          bootTimeoutMs: 300_000,
        });
      }
      const result = await branchBench(core, { tags, runs: 5, downtimeMs: 20, log });
      await writeFile(`${RESULTS}branch.json`, `${JSON.stringify({ machine, ...result }, null, 2)}\n`);
      await writeFile(
        `${RESULTS}branch.md`,
        `# BRANCH of a running sandbox: pre-copy vs stop-and-copy\n\n${machineMarkdown(machine)}\n- Image: default, 1 vCPU; each row on one running child restored from a snapshot of that size.\n${branchMarkdown(result)}\n`,
      );
      log('wrote bench/results/branch.{json,md}');
    } finally {
      for (const t of tags) await removeSnapshot(core.paths, t.tag).catch(() => undefined);
    }
  }

  if (only.length === 0 || only.includes('agent')) {
    await numpyImage();
    const tag = `bench-agent-${Date.now().toString(36)}`;
    log(`snapshot ${tag} (numpy, warm python worker)`);
    await createSnapshot(core, { tag, image: 'numpy', memMiB: 512, vcpus: 1, warmup: [], bootTimeoutMs: 300_000 });
    try {
      const rows = await agentBench(core, { tag, evalRuns: 20, execRuns: 5 });
      await writeFile(`${RESULTS}agent.json`, `${JSON.stringify({ machine, rows }, null, 2)}\n`);
      await writeFile(
        `${RESULTS}agent.md`,
        `# Warm eval vs a fresh process, in a forked child\n\n${machineMarkdown(machine)}\n- Snapshot: image numpy (Debian python3-numpy), 512 MiB, numpy pre-imported in the agent's warm Python worker\n- Each timing is one agent round trip from the host; the first call of each kind is excluded (warms TCG's translation cache).\n\n${agentMarkdown(rows)}\n`,
      );
      log('wrote bench/results/agent.{json,md}');
    } finally {
      await removeSnapshot(core.paths, tag).catch(() => undefined);
    }
  }
}

await main();
