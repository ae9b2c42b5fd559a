// Sandbox ids: `sb-` + 16 lowercase base32 characters (80 random bits). Unguessable (the
// original's were a timestamp and a counter) and valid under the tag rule, so an id can name
// a run dir, a cgroup and (its suffix) a network namespace.
//
// Many hosts: a node daemon puts its node key (NODE_KEY_CHARS characters of the same
// alphabet, derived from its --node-name) at the front of the 16, so a stateless gateway can
// route a sandbox call to the node that runs it from the id alone (src/gateway/routing.ts).
// The rest stays random: 13 characters, 65 bits. The id keeps the one pattern below.
import { createHash, randomBytes } from 'node:crypto';
import { ForkdError } from './errors.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
export const SANDBOX_ID_PATTERN = /^sb-[a-z2-7]{16}$/;

/** Characters of the id (after `sb-`) that name the node which made it. */
export const NODE_KEY_CHARS = 3;
export const NODE_KEY_PATTERN = /^[a-z2-7]{3}$/;

/** The node key of a node name: the first NODE_KEY_CHARS base32 characters of its sha256. */
export function nodeKeyOf(nodeName: string): string {
  return base32(createHash('sha256').update(nodeName, 'utf8').digest()).slice(0, NODE_KEY_CHARS);
}

/** The node key an id carries (its first NODE_KEY_CHARS characters after `sb-`). */
export function nodeKeyOfId(id: string): string {
  return id.slice(3, 3 + NODE_KEY_CHARS);
}

/** A new id: `sb-` + 16 random base32 characters, or the node key then 13 random ones. */
export function newSandboxId(nodeKey?: string): string {
  const random = base32(randomBytes(10));
  if (nodeKey === undefined) return `sb-${random}`;
  if (!NODE_KEY_PATTERN.test(nodeKey)) throw new Error(`node key ${JSON.stringify(nodeKey)} is not 3 of a-z 2-7`);
  return `sb-${nodeKey}${random.slice(NODE_KEY_CHARS)}`;
}

function base32(bytes: Buffer): string {
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
  return out;
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
