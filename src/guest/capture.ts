// Bounded text capture for eval's stdout / stderr, plus the conversion of an eval's value to
// what travels in the reply: JSON if it is JSON-serializable and small, else its String().
// Imports limits.js alone (not the protocol index) so the JS worker's bundle stays small.
import { MAX_EVAL_VALUE_BYTES } from '../protocol/limits.js';

/** An eval's exception as it travels in the reply (the `error` field of protocol 2's eval result). */
export type EvalError = {
  name: string;
  message: string;
  stack?: string;
};

export class TextCapture {
  private parts: string[] = [];
  private bytes = 0;
  truncated = false;

  constructor(private readonly maxBytes: number) {}

  write(text: string): void {
    if (this.truncated) return;
    const size = Buffer.byteLength(text);
    if (this.bytes + size <= this.maxBytes) {
      this.parts.push(text);
      this.bytes += size;
      return;
    }
    const room = Buffer.from(text).subarray(0, this.maxBytes - this.bytes);
    // Cutting mid-character leaves U+FFFD at the end, which is honest about the cut.
    this.parts.push(room.toString('utf8'));
    this.bytes = this.maxBytes;
    this.truncated = true;
  }

  text(): string {
    return this.parts.join('');
  }
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    // a hostile toString threw: the tag of its type is all we can say
    return Object.prototype.toString.call(value);
  }
}

/** `undefined` -> null; JSON-serializable -> its JSON text; anything else -> String(value) as JSON. */
export function toValueJson(value: unknown): { json: string } | { error: EvalError } {
  if (value === undefined) return { json: 'null' };
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    // circular or a throwing toJSON: the caller falls back to String()
    text = undefined;
  }
  if (text === undefined) text = JSON.stringify(safeString(value));
  const size = Buffer.byteLength(text);
  if (size > MAX_EVAL_VALUE_BYTES) {
    return {
      error: {
        name: 'ResultTooLarge',
        message: `eval value is ${size} bytes of JSON, over the ${MAX_EVAL_VALUE_BYTES}-byte limit; write it to a file instead`,
      },
    };
  }
  return { json: text };
}

/**
 * `text` cut to at most `maxBytes` of UTF-8 at a character boundary. Limits are in bytes so
 * that a reply's fields together fit one frame (the host's limits, in UTF-16 units, then hold too).
 */
export function cutUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.from(text);
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

/** Describes a thrown value from any realm (errors of the eval context fail `instanceof`). */
export function describeError(err: unknown): EvalError {
  try {
    if (typeof err === 'object' && err !== null && 'message' in err) {
      const e = err as { name?: unknown; message?: unknown; stack?: unknown };
      const name = e.name;
      const stack = e.stack;
      return {
        name: typeof name === 'string' ? cutUtf8(name, 256) : 'Error',
        message: cutUtf8(safeString(e.message), 64 * 1024),
        ...(typeof stack === 'string' ? { stack: cutUtf8(stack, 256 * 1024) } : {}),
      };
    }
    return { name: 'Error', message: cutUtf8(`thrown: ${safeString(err)}`, 64 * 1024) };
  } catch {
    // A Proxy or a throwing getter: user code must not break the reply.
    return { name: 'Error', message: 'thrown: a value that could not be described' };
  }
}
