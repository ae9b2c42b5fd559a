// The listener: HTTP or HTTPS on TCP, or a unix socket (mode 0600: the file system is then the
// access control). Resolves with the address actually bound (port 0 picks a free port).
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { ForkdError } from '../lib/errors.js';
import { bindText, type Bind } from './bind.js';
import { tlsOptions } from './tls.js';

export interface Listening {
  server: Server;
  /** `127.0.0.1:41234`, `[::1]:8889` or `unix:/run/forkd/api.sock`. */
  address: string;
  url: string;
}

export async function listen(
  bind: Bind,
  tls: { cert: Buffer; key: Buffer } | undefined,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Listening> {
  const server: Server = tls ? createHttpsServer(tlsOptions(tls), handler) : createHttpServer(handler);
  server.headersTimeout = 30_000;
  server.requestTimeout = 300_000; // receiving a request (a 64 MiB upload); responses may stream longer
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
  if (bind.kind === 'unix') await removeStaleSocket(bind.path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (bind.kind === 'unix') server.listen(bind.path, done);
    else server.listen(bind.port, bind.host, done);
  });
  const scheme = tls ? 'https' : 'http';
  if (bind.kind === 'unix') {
    await chmod(bind.path, 0o600);
    return { server, address: bindText(bind), url: `${scheme}+unix://${encodeURIComponent(bind.path)}` };
  }
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new ForkdError('internal', 'listener has no TCP address');
  const address = bindText({ kind: 'tcp', host: addr.address, port: addr.port });
  return { server, address, url: `${scheme}://${address}` };
}

async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket())
    throw new ForkdError(
      'conflict',
      `--bind unix:${path}: the path exists and is not a socket; remove it or pick another`,
    );
  await unlink(path);
}
