// Shared test environment: one data dir for all suites (images are cached by their inputs,
// so a second run reuses them), the built CLI, unique tags, and a core context.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadLocalConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { createCoreContext, type CoreContext } from '../../src/core/context.js';
import { buildImage } from '../../src/image/build.js';
import type { ImageManifest } from '../../src/image/manifest.js';
import { mapWithConcurrency } from '../../src/core/fork.js';

export const TEST_DATA_DIR = process.env.FORKD_TEST_DATA_DIR ?? '/var/lib/forkd-test';
export const CLI = fileURLToPath(new URL('../../src/bin/forkd.js', import.meta.url));

export function uniqueTag(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

const images = new Map<string, Promise<ImageManifest>>();

export type TestImage = 'default' | 'node' | 'numpy';

/**
 * Build (or reuse) a test image: `default` (lean: busybox + the native agent, as shipped),
 * `node` (default + the Node runtime, for JS eval), or `numpy` (python3-numpy + Node).
 */
export function ensureImage(name: TestImage): Promise<ImageManifest> {
  let p = images.get(name);
  if (!p) {
    mkdirSync(TEST_DATA_DIR, { recursive: true });
    p = buildImage({
      dataDir: TEST_DATA_DIR,
      name,
      packages: name === 'numpy' ? ['python3-numpy'] : [],
      runtimes: name === 'default' ? [] : ['node'],
    });
    images.set(name, p);
  }
  return p;
}

export async function testCore(): Promise<CoreContext> {
  const config = loadLocalConfig({ dataDir: TEST_DATA_DIR });
  return createCoreContext(config, createLogger({ level: process.env.FORKD_TEST_LOG === '1' ? 'debug' : 'error' }));
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `fn` over every item with at most `limit` at once (CLI invocations that only parse and
 * refuse are CPU-bound Node start-ups: a few in parallel use both cores). Rejects with the
 * first failure once all have settled.
 */
export async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const settled = await mapWithConcurrency(items.length, limit, (i) => fn(items[i] as T));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Run a Node script as its own process (env on top of this one's), collecting its output. */
export function runNode(
  script: string,
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The built `forkd` CLI, on the test data dir unless `env` says otherwise. */
export function runCli(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CliResult> {
  return runNode(CLI, args, { ...opts, env: { FORKD_DATA_DIR: TEST_DATA_DIR, ...opts.env } });
}
