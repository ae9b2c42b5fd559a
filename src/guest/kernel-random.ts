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
    for (let at = offset; at < end;) at += readSync(fd, bytes, at, end - at, null);
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
  const web = crypto.webcrypto as unknown as Record<string, unknown>;
  // The module's own getRandomValues is a fixed accessor that forwards to webcrypto's.
  Object.defineProperty(web, 'getRandomValues', { value: getRandomValues, configurable: true, writable: true });
  Object.defineProperty(web, 'randomUUID', { value: randomUUID, configurable: true, writable: true });
}
