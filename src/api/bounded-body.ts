// Reading a request body whole, bounded: the one reader of both HTTP surfaces (REST in http.ts,
// the E2B surface in api/e2b). Over the limit it rejects before buffering more; a body cut off
// mid-way (client gone, broken chunked framing, the request deadline) is the client's error,
// never an internal one and never a promise left pending.
import type { IncomingMessage } from 'node:http';
import { ForkdError, messageOf } from '../lib/errors.js';

export function bodyTooLarge(limit: number): ForkdError {
  return new ForkdError('payload_too_large', `request body over the ${limit}-byte limit of this route`);
}

/**
 * The body of `req`, at most `limit` bytes. `overflow` says what happens to the rest of an
 * oversized body: `leave` it unread (the caller's error reply drains it, as REST's sendError
 * does) or `drain` it here (read and dropped, so the reply can be written at once).
 */
export function readBoundedBody(req: IncomingMessage, limit: number, overflow: 'leave' | 'drain'): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? NaN) > limit) return Promise.reject(bodyTooLarge(limit));
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
      if (overflow === 'drain') req.resume();
      reject(bodyTooLarge(limit));
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const cutOff = (why: string): ForkdError =>
      new ForkdError('invalid_argument', `the request body was cut off before its end (${why})`);
    const onError = (err: Error): void => {
      cleanup();
      reject(cutOff(messageOf(err)));
    };
    const onClose = (): void => {
      if (req.readableEnded) return;
      cleanup();
      reject(cutOff('connection closed'));
    };
    req.on('data', onData).once('end', onEnd).once('error', onError).once('close', onClose);
  });
}
