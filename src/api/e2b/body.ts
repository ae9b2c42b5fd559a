// Request bodies of the E2B surface, read whole and bounded (over the limit: refused before
// more is buffered; a body cut off mid-way is the client's error, never a hang).
import type { IncomingMessage } from 'node:http';
import { ForkdError, messageOf } from '../../lib/errors.js';

export function readBounded(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      cleanup();
      req.resume(); // drain the rest without keeping it
      reject(tooLarge(limit));
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new ForkdError('invalid_argument', `the request body was cut off (${messageOf(err)})`));
    };
    const onClose = (): void => {
      if (req.readableEnded) return;
      cleanup();
      reject(new ForkdError('invalid_argument', 'the request body was cut off (connection closed)'));
    };
    req.on('data', onData).once('end', onEnd).once('error', onError).once('close', onClose);
  });
}

/** A JSON object body (empty body: `{}`). */
export async function readJsonObject(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const bytes = await readBounded(req, limit);
  if (bytes.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ForkdError('invalid_argument', `the request body is not JSON: ${messageOf(err)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ForkdError('invalid_argument', 'the request body must be a JSON object');
  return value as Record<string, unknown>;
}

function tooLarge(limit: number): ForkdError {
  return new ForkdError('payload_too_large', `request body over the ${limit}-byte limit of this route`);
}
