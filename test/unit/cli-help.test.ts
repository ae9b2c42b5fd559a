// The CLI's vocabulary without QEMU: every command and old name answers --help with its flags,
// their defaults and an example; old names print the deprecation note (and only after a
// success); the mode rule; and a daemon that accepts and never answers is an error within
// --timeout, naming its URL, from the built `forkd` binary.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findCommand, main } from '../../src/cli/main.js';
import { aliases, commands } from '../../src/cli/commands/index.js';

const CLI = fileURLToPath(new URL('../../src/bin/forkd.js', import.meta.url));

interface Run {
  code: number;
  out: string;
  err: string;
}

async function forkd(argv: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t), interactive: false });
  return { code, out, err };
}

/** Help text with each run of whitespace as one space: wrapped lines read as one. */
const flat = (text: string): string => text.replace(/\s+/g, ' ');

/** argv that names an old command: the flags form of `snapshot` needs a flag after it. */
const aliasArgv = (name: string): string[] =>
  name === 'snapshot --tag' ? ['snapshot', '--tag', 'x'] : name.split(' ');

describe('forkd CLI vocabulary', () => {
  let dataDir: string;
  let savedUrl: string | undefined;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'forkd-cli-help-'));
    // The mode rule reads FORKD_URL; a developer's own must not decide these tests.
    savedUrl = process.env.FORKD_URL;
    delete process.env.FORKD_URL;
  });
  after(async () => {
    if (savedUrl !== undefined) process.env.FORKD_URL = savedUrl;
    await rm(dataDir, { recursive: true, force: true });
  });

  test('forkd --help groups every command, lists the old names and states the mode rule', async () => {
    const r = await forkd(['--help']);
    assert.equal(r.code, 0);
    for (const heading of ['this host:', 'snapshots:', 'sandboxes:', 'packs', 'tools:'])
      assert.match(r.out, new RegExp(`^${heading}`, 'm'), heading);
    for (const c of commands) assert.match(r.out, new RegExp(`^  ${c.name}  `, 'm'), c.name);
    for (const a of aliases) assert.ok(r.out.includes(`forkd ${a.name} `), a.name);
    assert.match(flat(r.out), /with --url URL or FORKD_URL set, the snapshot commands and sandbox run talk to/);
    assert.match(flat(r.out), /--timeout SECS/);
    assert.equal((await forkd([])).code, 2, 'no command: usage, exit 2');
  });

  test('every command: --help lists each flag with its default and shows an example, exit 0', async () => {
    for (const c of commands) {
      const r = await forkd([...c.name.split(' '), '--help']);
      assert.equal(r.code, 0, `${c.name}: ${r.err}`);
      assert.equal(r.err, '', c.name);
      assert.ok(r.out.startsWith(`usage: forkd ${c.name}`), `${c.name}: ${r.out.slice(0, 80)}`);
      const text = flat(r.out);
      for (const [name, f] of Object.entries(c.flags)) {
        // `-n N` stands for a flag whose long name is its letter
        const shown = f.short === name ? `-${name} ` : `--${name}`;
        assert.ok(text.includes(shown), `${c.name} --help omits ${shown}`);
        if (f.default !== undefined)
          assert.ok(text.includes(`(default: ${flat(f.default)})`), `${c.name} --help omits the default of --${name}`);
      }
      const examples = r.out.split('\nexamples:\n')[1] ?? '';
      assert.match(examples, new RegExp(`^  (sudo )?forkd ${c.name}( |$)`, 'm'), `${c.name} has no example`);
      // `help <command>` is the same text
      assert.equal((await forkd(['help', ...c.name.split(' ')])).out, r.out, `forkd help ${c.name}`);
    }
  });

  test('every old name: --help shows the new command, then the one-line deprecation note', async () => {
    for (const a of aliases) {
      const r = await forkd([...aliasArgv(a.name), '--help']);
      assert.equal(r.code, 0, `${a.name}: ${r.err}`);
      assert.ok(r.out.startsWith(`usage: forkd ${a.target}`), `${a.name} -> ${r.out.slice(0, 80)}`);
      assert.equal(r.err, `forkd ${a.name} is deprecated; use forkd ${a.use ?? a.target}\n`);
    }
  });

  test('an old name that succeeds prints the note after its output; one that fails prints only its error', async () => {
    const ok = await forkd(['images', '--data-dir', dataDir]);
    assert.deepEqual(ok, {
      code: 0,
      out: 'no snapshots; create one with: forkd snapshot create --tag NAME\n',
      err: 'forkd images is deprecated; use forkd snapshot ls\n',
    });
    const bad = await forkd(['rmi', 'no/such', '--data-dir', dataDir]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /^forkd rmi: invalid snapshot tag "no\/such"[^\n]*\n$/);
    const flagsForm = await forkd(['snapshot', '--image', 'default', '--data-dir', dataDir]);
    assert.deepEqual([flagsForm.code, flagsForm.err], [2, 'forkd snapshot: --tag is required\n']);
    assert.equal((await forkd(['snapshot', 'ls', '--data-dir', dataDir])).err, '', 'new names print no note');
  });

  test('nouns and verbs: a noun alone lists its verbs; words resolve to the longest name', async () => {
    const bare = await forkd(['sandbox']);
    assert.equal(bare.code, 2);
    assert.match(bare.err, /^usage: forkd sandbox <run\|spawn\|ls\|exec\|eval\|cp\|branch\|kill>/);
    assert.equal((await forkd(['snapshot', '--help'])).code, 0);
    const unknown = await forkd(['snapshot', 'frob']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /^forkd snapshot: unknown verb "frob"/);
    const named = (argv: string[]): string | undefined => {
      const f = findCommand(argv);
      return f.kind === 'command' ? `${f.command.name}${f.alias ? ` (as ${f.alias.name})` : ''}` : f.kind;
    };
    assert.equal(named(['snapshot', 'create', '--tag', 't']), 'snapshot create');
    assert.equal(named(['snapshot', '--tag', 't']), 'snapshot create (as snapshot --tag)');
    const flagsForm = findCommand(['snapshot', '--tag', 'ok', '--image=x']);
    assert.deepEqual(flagsForm.kind === 'command' && [flagsForm.typed, flagsForm.argv], [
      'snapshot',
      ['--tag', 'ok', '--image=x'],
    ]);
    assert.equal(named(['snapshot', 'info', 't']), 'snapshot inspect (as snapshot info)');
    assert.equal(named(['fork', '--tag', 't']), 'sandbox run (as fork)');
    assert.equal(named(['netns', 'cleanup']), 'netns cleanup');
    assert.equal(named(['frob']), 'unknown');
  });

  test('the mode rule: --url or FORKD_URL selects the daemon, and flags of the other mode are refused', async () => {
    const tokenHere = await forkd(['snapshot', 'ls', '--token', 't', '--data-dir', dataDir]);
    assert.deepEqual(
      [tokenHere.code, tokenHere.err],
      [2, 'forkd snapshot ls: --token is a daemon-mode flag; set --url or FORKD_URL to talk to a daemon\n'],
    );
    process.env.FORKD_URL = 'http://127.0.0.1:1';
    try {
      const dirThere = await forkd(['snapshot', 'ls', '--data-dir', dataDir]);
      assert.equal(dirThere.code, 2);
      assert.match(dirThere.err, /--data-dir is a local-mode flag, but --url or FORKD_URL selects a daemon/);
      const there = await forkd(['snapshot', 'ls']);
      assert.equal(there.code, 1);
      assert.match(there.err, /^forkd snapshot ls: cannot reach the forkd daemon at http:\/\/127\.0\.0\.1:1: /);
      // An old local name keeps its mode whatever FORKD_URL says.
      assert.equal((await forkd(['images', '--data-dir', dataDir])).code, 0);
    } finally {
      delete process.env.FORKD_URL;
    }
  });

  describe('a daemon that accepts the connection and never answers', () => {
    let server: Server;
    const sockets: Socket[] = [];
    before(async () => {
      server = createServer((s) => sockets.push(s));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });
    after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    test('forkd ls --timeout 2 exits 1 within ~3 s with a message naming the URL', async () => {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const started = Date.now();
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [CLI, 'ls', '--url', url, '--timeout', '2'], {
          env: { ...process.env, FORKD_URL: '' },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.once('error', reject);
        child.once('close', (code) => {
          clearTimeout(killer);
          resolve({ code, stderr });
        });
      });
      const elapsedMs = Date.now() - started;
      assert.equal(r.code, 1, r.stderr);
      assert.ok(elapsedMs >= 1900 && elapsedMs < 4000, `exited after ${elapsedMs} ms`);
      assert.ok(sockets.length >= 1, 'the CLI connected');
      assert.ok(r.stderr.includes(url), r.stderr);
      assert.match(r.stderr, /^forkd ls: GET \/v1\/sandboxes: no complete answer from .* within 2000 ms/);
      assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
    });
  });
});
