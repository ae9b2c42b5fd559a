// Receives a migration stream from QEMU on a Unix socket and writes it to a file. QEMU 7.2's
// outgoing `fd:` URI takes only fds passed over QMP (SCM_RIGHTS, which Node cannot send), and
// `exec:` is forbidden by the seccomp policy (spawn=deny); `unix:` needs neither.
import { createServer, type Server, type Socket } from 'node:net';
import { createWriteStream } from 'node:fs';
import { chown, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { ForkdError } from '../lib/errors.js';

export interface MigrationSink {
  /** The URI to give QEMU's `migrate` command. */
  uri: string;
  /** Resolves with the byte count once QEMU closed the stream and the file is written. */
  done: Promise<number>;
  close(): Promise<void>;
}

export async function openMigrationSink(opts: {
  socketPath: string;
  outPath: string;
  owner?: { uid: number; gid: number };
}): Promise<MigrationSink> {
  await rm(opts.socketPath, { force: true });
  let server: Server | undefined;
  let accepted: Socket | undefined;
  const done = new Promise<number>((resolve, reject) => {
    server = createServer((socket) => {
      if (accepted) {
        socket.destroy(); // one stream per sink; anything else is not QEMU's
        return;
      }
      accepted = socket;
      server?.close();
      const out = createWriteStream(opts.outPath, { mode: 0o644 });
      pipeline(socket, out).then(
        () => resolve(out.bytesWritten),
        (err: unknown) =>
          reject(
            new ForkdError('vmm_error', `writing the migration stream to ${opts.outPath} failed: ${String(err)}`, {
              cause: err,
            }),
          ),
      );
    });
    server.once('error', (err) =>
      reject(new ForkdError('vmm_error', `migration socket ${opts.socketPath}: ${err.message}`, { cause: err })),
    );
  });
  done.catch(() => undefined); // awaited below; this keeps an early failure from being an unhandled rejection meanwhile
  await new Promise<void>((resolve, reject) => {
    server!.once('error', reject);
    server!.listen(opts.socketPath, resolve);
  });
  if (opts.owner) await chown(opts.socketPath, opts.owner.uid, opts.owner.gid);
  return {
    uri: `unix:${opts.socketPath}`,
    done,
    async close() {
      accepted?.destroy();
      await new Promise<void>((resolve) => (server?.listening ? server.close(() => resolve()) : resolve()));
      await rm(opts.socketPath, { force: true });
    },
  };
}
