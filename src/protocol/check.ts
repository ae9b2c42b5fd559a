// Hand-written validators for frames that cross the VM boundary. Each `Check` returns a
// fresh value holding only the fields it knows (so a hostile `__proto__` key or an extra
// megabyte of junk never travels further) or throws a ProtocolError naming the bad path.

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export type Check<T> = (value: unknown, path: string) => T;
export type Infer<C> = C extends Check<infer T> ? T : never;

function fail(path: string, expected: string, value: unknown): never {
  const got = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  throw new ProtocolError(`${path}: expected ${expected}, got ${got}`);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function str(opts: { min?: number; max?: number; pattern?: RegExp } = {}): Check<string> {
  return (value, path) => {
    if (typeof value !== 'string') fail(path, 'a string', value);
    if (opts.min !== undefined && value.length < opts.min) fail(path, `at least ${opts.min} chars`, value);
    if (opts.max !== undefined && value.length > opts.max) {
      throw new ProtocolError(`${path}: longer than ${opts.max} chars (${value.length})`);
    }
    if (opts.pattern && !opts.pattern.test(value)) throw new ProtocolError(`${path}: does not match ${opts.pattern}`);
    return value;
  };
}

export function int(opts: { min?: number; max?: number } = {}): Check<number> {
  return (value, path) => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(path, 'an integer', value);
    if (opts.min !== undefined && value < opts.min) throw new ProtocolError(`${path}: ${value} is below ${opts.min}`);
    if (opts.max !== undefined && value > opts.max) throw new ProtocolError(`${path}: ${value} is above ${opts.max}`);
    return value;
  };
}

export function num(opts: { min?: number } = {}): Check<number> {
  return (value, path) => {
    if (typeof value !== 'number' || !Number.isFinite(value)) fail(path, 'a finite number', value);
    if (opts.min !== undefined && value < opts.min) throw new ProtocolError(`${path}: ${value} is below ${opts.min}`);
    return value;
  };
}

export const bool: Check<boolean> = (value, path) => {
  if (typeof value !== 'boolean') fail(path, 'a boolean', value);
  return value;
};

export function literal<T extends string | boolean>(...allowed: T[]): Check<T> {
  return (value, path) => {
    if (!allowed.includes(value as T)) fail(path, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, value);
    return value as T;
  };
}

export function nullable<T>(check: Check<T>): Check<T | null> {
  return (value, path) => (value === null ? null : check(value, path));
}

export function optional<T>(check: Check<T>): Check<T | undefined> {
  return (value, path) => (value === undefined ? undefined : check(value, path));
}

export function arrayOf<T>(check: Check<T>, max: number): Check<T[]> {
  return (value, path) => {
    if (!Array.isArray(value)) fail(path, 'an array', value);
    if (value.length > max) throw new ProtocolError(`${path}: more than ${max} items (${value.length})`);
    return value.map((item, i) => check(item, `${path}[${i}]`));
  };
}

export function record<T>(check: Check<T>, maxKeys: number): Check<Record<string, T>> {
  return (value, path) => {
    if (!isPlainObject(value)) fail(path, 'an object', value);
    const keys = Object.keys(value);
    if (keys.length > maxKeys) throw new ProtocolError(`${path}: more than ${maxKeys} keys (${keys.length})`);
    const out: Record<string, T> = Object.create(null) as Record<string, T>;
    for (const key of keys) out[key] = check(value[key], `${path}.${key}`);
    return out;
  };
}

/** Any JSON value (already bounded by the frame size it arrived in). */
export const json: Check<unknown> = (value) => value;

type Optional<S> = { [K in keyof S]: undefined extends Infer<S[K]> ? K : never }[keyof S];
type Required<S> = Exclude<keyof S, Optional<S>>;
export type ObjectOf<S> = { [K in Required<S>]: Infer<S[K]> } & {
  [K in Optional<S>]?: Exclude<Infer<S[K]>, undefined>;
};
type Simplify<T> = { [K in keyof T]: T[K] } & {};

export function object<S extends Record<string, Check<unknown>>>(shape: S): Check<Simplify<ObjectOf<S>>> {
  return (value, path) => {
    if (!isPlainObject(value)) fail(path, 'an object', value);
    const out: Record<string, unknown> = {};
    for (const [key, check] of Object.entries(shape)) {
      const field = check(Object.hasOwn(value, key) ? value[key] : undefined, `${path}.${key}`);
      if (field !== undefined) out[key] = field;
    }
    return out as Simplify<ObjectOf<S>>;
  };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Standard padded base64 whose decoded size is at most `maxBytes` (Buffer.from would skip junk silently). */
export function base64(opts: { maxBytes: number; minBytes?: number }): Check<string> {
  return (value, path) => {
    if (typeof value !== 'string') fail(path, 'a base64 string', value);
    if (value.length % 4 !== 0 || !BASE64.test(value)) throw new ProtocolError(`${path}: not padded base64`);
    const bytes = (value.length / 4) * 3 - (value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0);
    if (bytes > opts.maxBytes) throw new ProtocolError(`${path}: ${bytes} bytes is over the ${opts.maxBytes} limit`);
    if (opts.minBytes !== undefined && bytes < opts.minBytes) {
      throw new ProtocolError(`${path}: ${bytes} bytes is under the ${opts.minBytes} minimum`);
    }
    return value;
  };
}

/** Binary bytes (protocol 2 carries them raw); copied so the caller owns them. */
export function bytes(opts: { maxBytes: number; minBytes?: number }): Check<Buffer> {
  return (value, path) => {
    if (!(value instanceof Uint8Array)) fail(path, 'bytes', value);
    if (value.length > opts.maxBytes)
      throw new ProtocolError(`${path}: ${value.length} bytes is over the ${opts.maxBytes} limit`);
    if (opts.minBytes !== undefined && value.length < opts.minBytes) {
      throw new ProtocolError(`${path}: ${value.length} bytes is under the ${opts.minBytes} minimum`);
    }
    return Buffer.from(value);
  };
}

/** A check that accepts the first alternative that passes (error of the last one otherwise). */
export function oneOf<A, B>(a: Check<A>, b: Check<B>): Check<A | B> {
  return (value, path) => {
    try {
      return a(value, path);
    } catch {
      // the first alternative's complaint is dropped: the second one decides
      return b(value, path);
    }
  };
}
