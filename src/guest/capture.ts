// Bounded text capture for eval's stdout / stderr, plus the conversion of an eval's value to
// what travels in the reply: JSON if it is JSON-serializable and small, else its String().
import { MAX_EVAL_VALUE_BYTES, type EvalError } from '../protocol/index.js';

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
    return Object.prototype.toString.call(value);
  }
}

/** `undefined` -> null; JSON-serializable -> as is; anything else -> String(value). */
export function toWireValue(value: unknown): { value: unknown } | { error: EvalError } {
  if (value === undefined) return { value: null };
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
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
  return { value: JSON.parse(text) as unknown };
}

/** Describes a thrown value from any realm (errors of the eval context fail `instanceof`). */
export function describeError(err: unknown): EvalError {
  if (typeof err === 'object' && err !== null && 'message' in err) {
    const e = err as { name?: unknown; message?: unknown; stack?: unknown };
    return {
      name: typeof e.name === 'string' ? e.name.slice(0, 256) : 'Error',
      message: safeString(e.message).slice(0, 64 * 1024),
      ...(typeof e.stack === 'string' ? { stack: e.stack.slice(0, 256 * 1024) } : {}),
    };
  }
  return { name: 'Error', message: `thrown: ${safeString(err)}`.slice(0, 64 * 1024) };
}
