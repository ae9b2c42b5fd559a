// Typed reads of the fields of an untrusted JSON object (the E2B surface has no OpenAPI
// document of its own to validate against): each names the field it refuses.
import { ForkdError } from '../../lib/errors.js';

type Obj = Record<string, unknown>;

function bad(field: string, what: string): ForkdError {
  return new ForkdError('invalid_argument', `${field} must be ${what}`);
}

export function optString(o: Obj, key: string, max = 4096): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > max) throw bad(key, `a string of at most ${max} characters`);
  return v;
}

export function optInt(o: Obj, key: string, min: number, max: number): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  // protobuf JSON writes 64-bit integers as strings; the SDK's own integers are numbers.
  const n = typeof v === 'string' && /^-?\d{1,16}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw bad(key, `an integer ${min}..${max}`);
  return n;
}

export function optBool(o: Obj, key: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw bad(key, 'true or false');
  return v;
}

export function optObject(o: Obj, key: string): Obj | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(key, 'an object');
  return v as Obj;
}

/** A map of strings (envs, metadata), bounded in entries and sizes. */
export function optStringMap(o: Obj, key: string, maxEntries = 256): Record<string, string> | undefined {
  const v = optObject(o, key);
  if (v === undefined) return undefined;
  const entries = Object.entries(v);
  if (entries.length > maxEntries) throw bad(key, `at most ${maxEntries} entries`);
  const out: Record<string, string> = {};
  for (const [k, val] of entries) {
    if (typeof val !== 'string' || k.length > 1024 || val.length > 64 * 1024)
      throw bad(`${key}.${k.slice(0, 64)}`, 'a string (keys up to 1 KiB, values up to 64 KiB)');
    Object.defineProperty(out, k, { value: val, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

export function optStringArray(o: Obj, key: string, maxItems = 4096): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length > maxItems || v.some((x) => typeof x !== 'string'))
    throw bad(key, `an array of at most ${maxItems} strings`);
  return v as string[];
}

/** protobuf JSON bytes: standard or URL-safe base64. */
export function optBytes(o: Obj, key: string): Buffer | undefined {
  const v = optString(o, key, 8 * 1024 * 1024);
  if (v === undefined) return undefined;
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) throw bad(key, 'base64');
  return Buffer.from(v, v.includes('-') || v.includes('_') ? 'base64url' : 'base64');
}
