// The SDK is its own package (packages/sdk, published as `forkd`): what `npm pack` puts in it
// is the compiled SDK and its README only (no SQLite, no MCP server, no daemon, no test), it
// declares no dependency and no install script, and the tarball installs into an empty
// project offline, with nothing else in node_modules, and imports there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
// dist/test/unit/sdk-package.test.js -> the repository root
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SDK_DIR = join(ROOT, 'packages', 'sdk');

interface PackJson {
  name: string;
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string; size: number }[];
}

async function pack(extra: string[] = []): Promise<PackJson> {
  // --ignore-scripts: dist/ is already built by `npm run build`; prepack would rebuild it.
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', ...extra], { cwd: SDK_DIR });
  const [info] = JSON.parse(stdout) as PackJson[];
  assert.ok(info, stdout);
  return info;
}

test('the SDK package holds the compiled SDK and its README, and declares no dependency or install script', async () => {
  const pkg = JSON.parse(await readFile(join(SDK_DIR, 'package.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(pkg.name, 'forkd');
  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies', 'bundleDependencies'])
    assert.equal(pkg[field], undefined, `${field} must be absent`);
  const scripts = (pkg.scripts ?? {}) as Record<string, string>;
  for (const hook of ['preinstall', 'install', 'postinstall', 'prepare'])
    assert.equal(scripts[hook], undefined, `no ${hook} script`);
  const info = await pack(['--dry-run']);
  const paths = info.files.map((f) => f.path).sort();
  for (const p of paths)
    assert.match(p, /^(package\.json|README\.md|dist\/[a-z-]+\.(js|d\.ts))$/, `unexpected file in the package: ${p}`);
  for (const needed of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/sandbox.js'])
    assert.ok(paths.includes(needed), `${needed} is packed`);
  assert.deepEqual(
    paths.filter((p) => /sqlite|mcp|test|server|daemon|gateway|guest|\.c$|\.map$/i.test(p)),
    [],
    'nothing of the daemon, MCP server, tests or source maps',
  );
  // Both READMEs state the size; keep them honest within 20 %.
  const near = (kb: number, bytes: number): boolean => Math.abs(kb * 1000 - bytes) <= bytes * 0.2;
  for (const file of [join(SDK_DIR, 'README.md'), join(ROOT, 'README.md')]) {
    const readme = await readFile(file, 'utf8');
    const stated = /packed (\d+) kB, (\d+) kB unpacked/.exec(readme);
    assert.ok(stated, `${file} states "packed N kB, M kB unpacked"`);
    assert.ok(near(Number(stated[1]), info.size), `packed ${info.size} B, ${file} says ${stated[1]} kB`);
    assert.ok(
      near(Number(stated[2]), info.unpackedSize),
      `unpacked ${info.unpackedSize} B, ${file} says ${stated[2]} kB`,
    );
  }
});

test('the tarball installs offline into an empty project: no build step, nothing but forkd in node_modules', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'forkd-sdk-install-'));
  try {
    const info = await pack(['--pack-destination', dir]);
    const project = join(dir, 'app');
    await run('mkdir', ['-p', project]);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    // --offline: a dependency, had the package one, would have to come from the registry and fail.
    const { stderr } = await run(
      'npm',
      ['install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', join(dir, info.filename)],
      { cwd: project },
    );
    assert.doesNotMatch(stderr, /gyp|prebuild|install script/i, 'no native build step');
    assert.deepEqual(
      (await readdir(join(project, 'node_modules'))).filter((n) => !n.startsWith('.')),
      ['forkd'],
      'nothing beside the SDK',
    );
    const { stdout } = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const m = await import('forkd'); console.log([typeof m.Sandbox.create, typeof m.CommandExitError, typeof m.Controller].join(' '))",
      ],
      { cwd: project },
    );
    assert.equal(stdout.trim(), 'function function function');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
