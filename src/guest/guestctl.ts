// The resident forkd-guestctl (`serve` mode): started once when the agent starts, so it is
// part of every snapshot and a restored child's identity costs two pipe round trips instead
// of two fork+execs of the Node agent (~0.5 s each under TCG). Restarted if it ever dies.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { GuestError, errnoOf } from './errors.js';
import type { GuestLog } from './log.js';

const REPLY_TIMEOUT_MS = 10_000;

export class GuestCtl {
  #child: ChildProcessWithoutNullStreams | undefined;
  #startError: string | undefined;
  #buffer = '';
  #waiters: ((line: string) => void)[] = [];
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly log: GuestLog,
  ) {}

  /** Start the helper now (best effort): failures surface on the first call. */
  start(): void {
    if (this.#child) return;
    this.#startError = undefined;
    const child = spawn(this.path, ['serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    child.stdout.setEncoding('utf8').on('data', (s: string) => this.#onData(s));
    child.stderr.resume();
    child.stdin.on('error', () => undefined);
    child.once('error', (err) => {
      this.#startError = errnoOf(err) === 'ENOENT' ? `${this.path} not found` : err.message;
      this.#reset();
    });
    child.once('exit', () => this.#reset());
  }

  /** One command line; resolves on "ok", rejects with the helper's reason otherwise. */
  call(command: string): Promise<void> {
    const run = this.#queue.then(() => this.#call(command));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.#child?.kill('SIGKILL');
    this.#reset();
  }

  async #call(command: string): Promise<void> {
    if (!this.#child) this.start();
    const child = this.#child;
    // A spawn error is only known on the next tick; give it that tick.
    await new Promise((r) => setImmediate(r));
    if (!child || this.#child !== child) {
      throw new GuestError('internal', `identity: cannot run forkd-guestctl: ${this.#startError ?? 'it exited'}`);
    }
    const reply = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new GuestError('internal', 'identity: forkd-guestctl did not answer')),
        REPLY_TIMEOUT_MS,
      );
      this.#waiters.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
      child.stdin.write(`${command}\n`);
    });
    if (reply !== 'ok') {
      this.log.warn('forkd-guestctl refused', { command: command.split(' ')[0], reply });
      throw new GuestError(
        'internal',
        `identity: forkd-guestctl ${command.split(' ')[0]}: ${reply.replace(/^err /, '')}`,
      );
    }
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    let nl: number;
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 1);
      this.#waiters.shift()?.(line);
    }
  }

  #reset(): void {
    this.#child = undefined;
    this.#buffer = '';
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w('err forkd-guestctl exited');
  }
}
