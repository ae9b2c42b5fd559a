// Sandbox ids: `sb-` + 16 lowercase base32 characters (80 random bits). Unguessable (the
// original's were a timestamp and a counter) and valid under the tag rule, so an id can name
// a run dir, a cgroup and (its suffix) a network namespace.
import { randomBytes } from 'node:crypto';
import { ForkdError } from './errors.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
export const SANDBOX_ID_PATTERN = /^sb-[a-z2-7]{16}$/;

export function newSandboxId(): string {
  const bytes = randomBytes(10);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return `sb-${out}`;
}

export function isSandboxId(value: unknown): value is string {
  return typeof value === 'string' && SANDBOX_ID_PATTERN.test(value);
}

export function assertSandboxId(value: unknown): string {
  if (isSandboxId(value)) return value;
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : `(${typeof value})`;
  throw new ForkdError('invalid_id', `invalid sandbox id ${shown}: expected "sb-" followed by 16 characters a-z 2-7`);
}

/** A sandbox's network namespace: `fk-` + the last 12 characters of its id. */
export function netnsName(id: string): string {
  return `fk-${assertSandboxId(id).slice(-12)}`;
}
