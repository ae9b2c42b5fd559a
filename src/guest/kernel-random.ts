// Node's crypto draws from OpenSSL's DRBG, whose state lives in the agent's memory and so is
// copied into every child of a snapshot; OpenSSL cannot be told to reseed from JS. Inside the
// guest, route the agent's CSPRNG entry points to the kernel CRNG instead, which `identity`
// reseeds in every child — so code evaluated in the warm context never repeats a sibling's
// random bytes, even if the parent used crypto before the snapshot.
import { openSync, readSync } from 'node:fs';
import crypto from 'node:crypto';

type Fillable = NodeJS.ArrayBufferView;

export function installKernelRandom(devicePath = '/dev/urandom'): void {
  const fd = openSync(devicePath, 'r');
  const fill = <T extends Fillable>(view: T, offset = 0, size?: number): T => {
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    const end = size === undefined ? bytes.length : offset + size;
    for (let at = offset; at < end;) {
      const n = readSync(fd, bytes, at, end - at, null);
      if (n === 0) throw new Error(`${devicePath} returned no bytes`);
      at += n;
    }
    return view;
  };
  const randomBytes = (size: number, cb?: (err: Error | null, buf: Buffer) => void): Buffer | undefined => {
    const buf = fill(Buffer.allocUnsafe(size));
    if (!cb) return buf;
    queueMicrotask(() => cb(null, buf));
    return undefined;
  };
  const getRandomValues = <T extends Fillable>(view: T): T => fill(view);
  const randomUUID = (): string => {
    const b = fill(Buffer.allocUnsafe(16));
    b[6] = (b[6]! & 0x0f) | 0x40; // version 4
    b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };
  const patch = crypto as unknown as Record<string, unknown>;
  patch.randomBytes = randomBytes;
  patch.pseudoRandomBytes = randomBytes;
  patch.randomFillSync = (view: Fillable, offset?: number, size?: number) => fill(view, offset, size);
  patch.randomFill = (view: Fillable, ...rest: unknown[]) => {
    const cb = rest.pop() as (err: Error | null, v: Fillable) => void;
    const [offset, size] = rest as [number | undefined, number | undefined];
    fill(view, offset, size);
    queueMicrotask(() => cb(null, view));
  };
  patch.randomUUID = randomUUID;
  // Node's randomInt draws from a module-private 6 KiB cache filled by OpenSSL (not through the
  // exports above): that cache and the DRBG behind it would be copied into every child.
  patch.randomInt = (...args: unknown[]): number | undefined => {
    const cb =
      typeof args[args.length - 1] === 'function' ? (args.pop() as (e: Error | null, n?: number) => void) : undefined;
    const [min, max] = args.length >= 2 ? [args[0], args[1]] : [0, args[0]];
    const n = randomIntIn(min, max, fill);
    if (!cb) return n;
    process.nextTick(() => cb(null, n));
    return undefined;
  };
  const web = crypto.webcrypto as unknown as Record<string, unknown>;
  // The module's own getRandomValues is a fixed accessor that forwards to webcrypto's.
  Object.defineProperty(web, 'getRandomValues', { value: getRandomValues, configurable: true, writable: true });
  Object.defineProperty(web, 'randomUUID', { value: randomUUID, configurable: true, writable: true });
}

/** Node's own bounds: safe integers, min < max, max - min below 2^48. */
const RAND_MAX = 0xffff_ffff_ffff;

function randomIntIn(min: unknown, max: unknown, fill: (view: Buffer) => Buffer): number {
  if (!Number.isSafeInteger(min))
    throw new TypeError(`The "min" argument must be a safe integer. Received ${String(min)}`);
  if (!Number.isSafeInteger(max))
    throw new TypeError(`The "max" argument must be a safe integer. Received ${String(max)}`);
  const lo = min as number;
  const hi = max as number;
  if (hi <= lo)
    throw new RangeError(
      `The value of "max" is out of range. It must be greater than the value of "min" (${lo}). Received ${hi}`,
    );
  const range = hi - lo;
  if (range > RAND_MAX)
    throw new RangeError(`The value of "max - min" is out of range. It must be <= ${RAND_MAX}. Received ${range}`);
  // Rejection sampling over 48-bit draws, as Node does, so every value is equally likely.
  const limit = RAND_MAX - (RAND_MAX % range);
  const buf = Buffer.allocUnsafe(6);
  for (;;) {
    const x = fill(buf).readUIntBE(0, 6);
    if (x < limit) return lo + (x % range);
  }
}
