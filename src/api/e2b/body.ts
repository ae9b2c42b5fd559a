// Request bodies of the E2B surface: the shared bounded reader (api/bounded-body.ts), and JSON.
import type { IncomingMessage } from 'node:http';
import { ForkdError, messageOf } from '../../lib/errors.js';
import { readBoundedBody } from '../bounded-body.js';

/** The body, at most `limit` bytes; the rest of an oversized one is drained here. */
export function readBounded(req: IncomingMessage, limit: number): Promise<Buffer> {
  return readBoundedBody(req, limit, 'drain');
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
