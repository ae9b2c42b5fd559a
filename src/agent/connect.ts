// Connecting to QEMU's side of the agent port (a Unix socket QEMU listens on). QEMU may not
// have created it yet, or not be listening yet: ENOENT and ECONNREFUSED are retried until the
// deadline; anything else is an error at once.
import { createConnection, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoOf, ForkdError, messageOf } from '../lib/errors.js';

const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED']);

export async function connectUnixSocket(path: string, signal: AbortSignal, timeoutMs: number): Promise<Socket> {
  let delayMs = 10;
  let last = 'not tried';
  for (;;) {
    if (signal.aborted) {
      throw new ForkdError('timeout', `agent socket ${path} not connectable within ${timeoutMs} ms (last: ${last})`, {
        cause: signal.reason,
      });
    }
    try {
      return await tryConnect(path, signal);
    } catch (err) {
      const code = errnoOf(err);
      if (!code || !RETRYABLE.has(code)) {
        if (signal.aborted) continue;
        throw new ForkdError('agent_error', `connecting to agent socket ${path}: ${messageOf(err)}`, { cause: err });
      }
      last = code;
    }
    await sleep(delayMs, undefined, { signal }).catch(() => undefined); // aborted: the loop's own check of `signal` ends it
    delayMs = Math.min(delayMs * 2, 100);
  }
}

function tryConnect(path: string, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const onAbort = (): void => {
      socket.destroy();
      reject(new Error('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
  });
}
