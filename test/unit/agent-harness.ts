// Test harness (not a test file): the native guest agent (src/guest/native/forkd-agent.c),
// compiled on the host and served on a Unix socket (--listen) as QEMU would expose the port,
// so the host AgentClient and raw-frame peers can be tested against it without a VM. Identity
// runs in test mode: entropy and clock changes go to a log file, the hostname to a file.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { access, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const NATIVE = join(REPO, 'src', 'guest', 'native');
/** The eval workers the agent forwards to (built by scripts/bundle-guest.mjs; plain Python). */
export const JS_WORKER = join(REPO, 'dist', 'src', 'guest', 'js-worker.mjs');
export const PY_WORKER = join(REPO, 'src', 'guest', 'workers', 'py-worker.py');
/** The same flags as the image build (src/image/guest-helper.ts), which compiles every .c of src/guest/native. */
export const AGENT_GCC_ARGS = ['-static', '-Os', '-Wall', '-Wextra', '-Werror', '-s', '-DFORKD_VERSION="0.1.0"'];

export interface GuestOptions {
  /** Default <dir>/hostname. */
  hostnameFile?: string;
  /** Default <dir>/identity.log ("entropy <hex>" and "settime <ms>" lines). */
  identityLog?: string;
  node?: string;
  jsWorker?: string;
  python?: string;
  pyWorker?: string;
  /** More command-line arguments. */
  args?: string[];
}

export interface GuestHarness {
  dir: string;
  socketPath: string;
  hostnameFile: string;
  identityLog: string;
  pid: number;
  /** What the agent logged to stderr so far. */
  log(): string;
  /** Kills the agent (SIGTERM: it kills its process groups first), checks it exited, removes the dir. */
  close(): Promise<void>;
}

let built: Promise<string> | undefined;

/** python3 from PATH as an absolute path (the agent checks its runtimes with access(), no PATH search), or undefined. */
export function hostPython(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v python3'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Compiles forkd-agent.c once per process; cached in /tmp by the sources' sizes and mtimes. */
export function agentBinary(): Promise<string> {
  built ??= (async () => {
    const files = (await readdir(NATIVE)).filter((f) => /\.[ch]$/.test(f)).sort();
    let key = AGENT_GCC_ARGS.join(' ');
    for (const f of files) {
      const st = await stat(join(NATIVE, f));
      key += `|${f}:${st.size}:${st.mtimeMs}`;
    }
    const sources = files.filter((f) => f.endsWith('.c')).map((f) => join(NATIVE, f));
    const { createHash } = await import('node:crypto');
    const cacheDir = join(tmpdir(), 'forkd-agent-build');
    const out = join(cacheDir, `forkd-agent-${createHash('sha256').update(key).digest('hex').slice(0, 16)}`);
    if (
      await access(out).then(
        () => true,
        () => false,
      )
    )
      return out;
    await mkdir(cacheDir, { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    await new Promise<void>((ok, fail) =>
      execFile('gcc', [...AGENT_GCC_ARGS, '-o', tmp, ...sources], (err, _o, stderr) =>
        err ? fail(new Error(`building forkd-agent failed:\n${stderr}`)) : ok(),
      ),
    );
    await rename(tmp, out);
    return out;
  })();
  return built;
}

async function connectable(path: string): Promise<boolean> {
  return new Promise((ok) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      ok(true);
    });
    s.once('error', () => ok(false));
  });
}

export async function startGuest(opts: GuestOptions = {}): Promise<GuestHarness> {
  const bin = await agentBinary();
  const dir = await mkdtemp(join(tmpdir(), 'forkd-agent-test-'));
  const socketPath = join(dir, 'agent.sock');
  const hostnameFile = opts.hostnameFile ?? join(dir, 'hostname');
  const identityLog = opts.identityLog ?? join(dir, 'identity.log');
  const args = [
    '--listen',
    socketPath,
    '--hostname-file',
    hostnameFile,
    '--identity-log',
    identityLog,
    '--node',
    opts.node ?? process.execPath,
    '--js-worker',
    opts.jsWorker ?? JS_WORKER,
    '--python',
    opts.python ?? hostPython() ?? '/nonexistent/python3',
    '--py-worker',
    opts.pyWorker ?? PY_WORKER,
    ...(opts.args ?? []),
  ];
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    log += s;
    if (process.env.FORKD_AGENT_LOG) process.stderr.write(s);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((ok) =>
    child.once('exit', (code, signal) => ok({ code, signal })),
  );
  const deadline = Date.now() + 10_000;
  while (!(await connectable(socketPath))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`forkd-agent did not listen on ${socketPath}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    dir,
    socketPath,
    hostnameFile,
    identityLog,
    pid: child.pid as number,
    log: () => log,
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const { code, signal } = await exited;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
      if (code !== 0) throw new Error(`forkd-agent exited with ${code ?? signal}:\n${log}`);
    },
  };
}

/** Fails if any pid is still a live (non-zombie) process after `withinMs`. */
export async function assertGone(pids: number[], withinMs = 3000): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const deadline = Date.now() + withinMs;
  for (;;) {
    const alive: number[] = [];
    for (const pid of pids) {
      const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
      // Field 3 is the state; Z = zombie (dead, waiting for a parent that may be slow to reap).
      if (st !== undefined && !/^\d+ \(.*\) Z/.test(st)) alive.push(pid);
    }
    if (alive.length === 0) return;
    if (Date.now() > deadline) throw new Error(`processes still alive: ${alive.join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
