// The Debian `zstd` binary as a pipe (Node 20's zlib has no zstd): argv arrays, stdin/stdout
// streamed, stderr tail kept for errors, and an idempotent stop. zstd checks its own frame
// checksums (XXH64) when decompressing, so transport damage is caught there too.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { ForkdError, messageOf } from '../lib/errors.js';

export const ZSTD_BINARY = 'zstd';
/** zstd frame magic (little-endian 0xFD2FB528). */
export const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

export interface ZstdPipe {
  stdin: Writable;
  stdout: Readable;
  /** Resolves when zstd exits 0; rejects with its stderr tail otherwise. */
  exited: Promise<void>;
  /** Kill it (idempotent) and wait for the exit. */
  stop(): Promise<void>;
}

/** `zstd -T0 -<level> -c`: all cores, stdin to stdout. */
export function zstdCompress(level = 3): ZstdPipe {
  return start(['-q', '-T0', `-${level}`, '-c'], 'compress');
}

/** `zstd -dc`, with the default 128 MiB window limit made explicit (a hostile frame cannot ask for more). */
export function zstdDecompress(): ZstdPipe {
  return start(['-q', '-d', '-c', '--memory=128MB'], 'decompress');
}

function start(args: string[], what: string): ZstdPipe {
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(ZSTD_BINARY, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    stderr = (stderr + s).slice(-4000);
  });
  // EPIPE when zstd exits early is reported through `exited`, not as an unhandled error.
  child.stdin.on('error', () => undefined);
  let killed = false;
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => {
      reject(
        new ForkdError(
          'host_error',
          `cannot run ${ZSTD_BINARY} (${messageOf(err)}); install it with: apt-get install zstd`,
          {
            cause: err,
          },
        ),
      );
    });
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else if (killed) reject(new ForkdError('internal', `${ZSTD_BINARY} (${what}) was stopped`));
      else
        reject(
          new ForkdError(
            what === 'decompress' ? 'corrupt_snapshot' : 'host_error',
            `${ZSTD_BINARY} ${what} failed (${signal ?? `exit ${String(code)}`})${
              what === 'decompress' ? ': the pack is damaged or not a zstd stream' : ''
            }${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join('; ')}` : ''}`,
          ),
        );
    });
  });
  // Callers await `exited` on their success path; a failure path may never look at it.
  exited.catch(() => undefined);
  return {
    stdin: child.stdin,
    stdout: child.stdout,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        killed = true;
        child.kill('SIGKILL');
      }
      child.stdin.destroy();
      child.stdout.destroy();
      await exited.catch(() => undefined); // stopped on purpose: its exit status means nothing now
    },
  };
}
