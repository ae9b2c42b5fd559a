// Pack benchmark (issue 7): pack a snapshot into a .forkd.tar.zst and unpack it into another
// data dir, a few times: throughput over the snapshot's logical size (memory.bin counted in
// full, as the tar stream carries it), and the compression ratio.
import { lstat, mkdtemp, readdir, rm, chmod } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { CoreContext } from '../src/core/context.js';
import { createCoreContext } from '../src/core/context.js';
import { loadLocalConfig } from '../src/lib/config.js';
import { createLogger } from '../src/lib/log.js';
import { run } from '../src/lib/exec.js';
import { packToFile } from '../src/pack/pack.js';
import { unpackFile } from '../src/pack/unpack.js';

export interface PackRun {
  packMs: number;
  unpackMs: number;
  compressedBytes: number;
}

export interface PackBenchResult {
  tag: string;
  memMiB: number;
  zstd: string;
  /** 1-minute load average before and after (other work on the machine skews throughput). */
  loadAvg: [number, number];
  /** Sum of the files' sizes: what the tar stream carries. */
  logicalBytes: number;
  /** Blocks the source snapshot really uses (memory.bin is sparse; image files are hard links). */
  allocatedBytes: number;
  /** Blocks the unpacked copy uses (written sparse). */
  unpackedAllocatedBytes: number;
  files: Record<string, number>;
  runs: PackRun[];
  median: PackRun;
  packMiBps: number;
  unpackMiBps: number;
  ratio: number;
  ratioAllocated: number;
}

const MiB = 1024 * 1024;

export async function packBench(
  core: CoreContext,
  opts: { tag: string; memMiB: number; runs: number; log: (s: string) => void },
): Promise<PackBenchResult> {
  const work = await mkdtemp(join(tmpdir(), 'forkd-pack-bench-'));
  await chmod(work, 0o755);
  try {
    const loadBefore = loadavg()[0] ?? NaN;
    const source = await dirUsage(core.paths.snapshotDir(opts.tag));
    const runs: PackRun[] = [];
    let unpackedAllocatedBytes = 0;
    for (let i = 0; i < opts.runs; i++) {
      const file = join(work, `run${i}.forkd.tar.zst`);
      let t = performance.now();
      const packed = await packToFile(core.paths, { tag: opts.tag, output: file });
      const packMs = performance.now() - t;
      const other = await createCoreContext(
        loadLocalConfig({ dataDir: join(work, `data${i}`) }),
        createLogger({ level: 'error' }),
      );
      t = performance.now();
      await unpackFile(other, { file });
      const unpackMs = performance.now() - t;
      unpackedAllocatedBytes = (await dirUsage(other.paths.snapshotDir(opts.tag))).allocatedBytes;
      runs.push({ packMs, unpackMs, compressedBytes: packed.compressedBytes });
      opts.log(
        `pack run ${i + 1}/${opts.runs}: pack ${packMs.toFixed(0)} ms, unpack ${unpackMs.toFixed(0)} ms, ${(packed.compressedBytes / MiB).toFixed(1)} MiB`,
      );
      await rm(file, { force: true });
      await rm(join(work, `data${i}`), { recursive: true, force: true });
    }
    const median: PackRun = {
      packMs: med(runs.map((r) => r.packMs)),
      unpackMs: med(runs.map((r) => r.unpackMs)),
      compressedBytes: med(runs.map((r) => r.compressedBytes)),
    };
    const version = (await run('zstd', ['--version'])).stdout;
    const zstd = /v\d+\.\d+\.\d+/.exec(version)?.[0] ?? version.trim();
    return {
      tag: opts.tag,
      memMiB: opts.memMiB,
      zstd,
      loadAvg: [loadBefore, loadavg()[0] ?? NaN],
      logicalBytes: source.logicalBytes,
      allocatedBytes: source.allocatedBytes,
      unpackedAllocatedBytes,
      files: source.files,
      runs,
      median,
      packMiBps: source.logicalBytes / MiB / (median.packMs / 1000),
      unpackMiBps: source.logicalBytes / MiB / (median.unpackMs / 1000),
      ratio: source.logicalBytes / median.compressedBytes,
      ratioAllocated: source.allocatedBytes / median.compressedBytes,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export function packMarkdown(r: PackBenchResult): string {
  const mib = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;
  return [
    `- Snapshot: image default, ${r.memMiB} MiB guest RAM, no warm-up; files: ${Object.entries(r.files)
      .map(([n, b]) => `${n} ${mib(b)}`)
      .join(', ')}`,
    `- Pack: \`zstd -T0 -3\` (zstd ${r.zstd}), tar written and sha256-verified by forkd, into a file on the same disk; unpack: \`zstd -dc\`, strict tar reader, sha256 of every file, sparse writes, rename into place.`,
    `- Throughput is over the logical size (what the tar stream carries: memory.bin counted in full). Median of ${r.runs.length} runs. Load average (1 min) ${r.loadAvg[0].toFixed(1)} before, ${r.loadAvg[1].toFixed(1)} after: other work shared the 2 cores.`,
    '',
    '| | pack | unpack |',
    '|---|---|---|',
    `| time | ${(r.median.packMs / 1000).toFixed(2)} s | ${(r.median.unpackMs / 1000).toFixed(2)} s |`,
    `| throughput | **${r.packMiBps.toFixed(0)} MiB/s** | **${r.unpackMiBps.toFixed(0)} MiB/s** |`,
    '',
    '| logical size | allocated on disk (source) | pack file | ratio (logical) | ratio (allocated) | allocated after unpack |',
    '|---|---|---|---|---|---|',
    `| ${mib(r.logicalBytes)} | ${mib(r.allocatedBytes)} | ${mib(r.median.compressedBytes)} | **${r.ratio.toFixed(1)}x** | ${r.ratioAllocated.toFixed(1)}x | ${mib(r.unpackedAllocatedBytes)} |`,
    '',
    `Runs (pack ms / unpack ms / bytes): ${r.runs.map((x) => `${x.packMs.toFixed(0)} / ${x.unpackMs.toFixed(0)} / ${x.compressedBytes}`).join('; ')}.`,
  ].join('\n');
}

async function dirUsage(
  dir: string,
): Promise<{ logicalBytes: number; allocatedBytes: number; files: Record<string, number> }> {
  let logicalBytes = 0;
  let allocatedBytes = 0;
  const files: Record<string, number> = {};
  for (const name of (await readdir(dir)).sort()) {
    const st = await lstat(join(dir, name));
    if (!st.isFile()) continue;
    files[name] = st.size;
    logicalBytes += st.size;
    allocatedBytes += st.blocks * 512;
  }
  return { logicalBytes, allocatedBytes, files };
}

function med(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}
