// Each sandbox namespace needs its own address on the host bridge (10.43.0.0/16). Addresses
// are claimed with O_EXCL files under /run/forkd/net, so concurrent processes (the daemon, a
// local `forkd fork`) never hand out the same one, and a daemon restart keeps the claims of
// the namespaces that survived it. /run is a tmpfs: claims vanish on reboot with the namespaces.
//   addr/10.43.12.34 -> "fk-abcdefghijkl"   (the lock)
//   ns/fk-abcdefghijkl -> "10.43.12.34"     (the reverse index, for release)
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ForkdError, errnoOf } from '../lib/errors.js';

export const CLAIMS_DIR = '/run/forkd/net';
/** Host numbers 2 .. 65534 of 10.43.0.0/16 (.0.0 is the network, .0.1 the bridge, .255.255 broadcast). */
const FIRST_HOST = 2;
const HOST_COUNT = 65533;

/** 10.43.x.y for host number n of the /16. */
export function bridgeHostAddress(n: number): string {
  return `10.43.${(n >> 8) & 255}.${n & 255}`;
}

/**
 * The order in which namespace `ns` tries addresses: a start derived from its name, then
 * upwards, wrapping. Deterministic, so it can be unit-tested; uniqueness comes from the claims.
 */
export function* addressCandidates(ns: string): Generator<string> {
  const start = createHash('sha256').update(ns).digest().readUInt32BE(0) % HOST_COUNT;
  for (let i = 0; i < HOST_COUNT; i++) yield bridgeHostAddress(FIRST_HOST + ((start + i) % HOST_COUNT));
}

/** A claim file's content; undefined when there is none (released meanwhile). */
async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    // an absent claim file reads as no claim
    return undefined;
  }
}

export class AddressClaims {
  constructor(readonly dir: string = CLAIMS_DIR) {}

  #addr(address: string): string {
    return join(this.dir, 'addr', address);
  }

  #ns(ns: string): string {
    return join(this.dir, 'ns', ns);
  }

  /** The address claimed for `ns`, or undefined. */
  async addressOf(ns: string): Promise<string | undefined> {
    const address = await readText(this.#ns(ns));
    if (address === undefined) return undefined;
    return (await readText(this.#addr(address))) === ns ? address : undefined;
  }

  /** Claim an address for `ns`; returns the one it already holds when re-run. */
  async claim(ns: string): Promise<string> {
    const held = await this.addressOf(ns);
    if (held !== undefined) return held;
    await mkdir(join(this.dir, 'addr'), { recursive: true, mode: 0o700 });
    await mkdir(join(this.dir, 'ns'), { recursive: true, mode: 0o700 });
    for (const address of addressCandidates(ns)) {
      try {
        await writeFile(this.#addr(address), `${ns}\n`, { flag: 'wx', mode: 0o600 });
      } catch (error) {
        if (errnoOf(error) === 'EEXIST') continue;
        throw new ForkdError('host_error', `cannot claim bridge address ${address} in ${this.dir}: ${String(error)}`, {
          cause: error,
        });
      }
      await writeFile(this.#ns(ns), `${address}\n`, { mode: 0o600 });
      return address;
    }
    throw new ForkdError('unavailable', `all ${HOST_COUNT} sandbox bridge addresses are in use`);
  }

  /**
   * Give back the address of `ns`. Idempotent: a claim file already gone is fine, and one that
   * cannot be removed stays behind stale until prune() takes it.
   */
  async release(ns: string): Promise<void> {
    const address = await readText(this.#ns(ns));
    if (address !== undefined && (await readText(this.#addr(address))) === ns) {
      await unlink(this.#addr(address)).catch(() => undefined); // already released (a second release or a prune)
    }
    await unlink(this.#ns(ns)).catch(() => undefined); // as above
  }

  /** Namespaces holding a claim (either index), for cleanup and leak checks. */
  async holders(): Promise<string[]> {
    const out = new Set<string>();
    // A claims dir not made yet holds no claims.
    for (const name of await readdir(join(this.dir, 'ns')).catch(() => [] as string[])) out.add(name);
    for (const name of await readdir(join(this.dir, 'addr')).catch(() => [] as string[])) {
      // as the comment above says
      const holder = await readText(this.#addr(name));
      if (holder) out.add(holder);
    }
    return [...out].sort();
  }

  /**
   * Remove claims whose namespace is not in `alive`. Claims younger than `minAgeMs` are kept:
   * a setup in another process may have claimed and not yet created its namespace.
   */
  async releaseStale(alive: ReadonlySet<string>, minAgeMs = 60_000): Promise<string[]> {
    const removed: string[] = [];
    const old = async (path: string): Promise<boolean> => {
      try {
        return Date.now() - (await stat(path)).mtimeMs >= minAgeMs;
      } catch {
        return false; // released meanwhile: nothing to prune
      }
    };
    // As in holders(): no claims dir yet, nothing to prune.
    for (const name of await readdir(join(this.dir, 'addr')).catch(() => [] as string[])) {
      const path = this.#addr(name);
      const holder = await readText(path);
      if (holder !== undefined && !alive.has(holder) && (await old(path))) {
        await unlink(path).catch(() => undefined); // another pruner got there first
        removed.push(`${name} (${holder})`);
      }
    }
    for (const name of await readdir(join(this.dir, 'ns')).catch(() => [] as string[])) {
      // no claims dir yet: nothing to prune
      const path = this.#ns(name);
      if (!alive.has(name) && (await old(path))) await unlink(path).catch(() => undefined); // as above
    }
    return removed;
  }
}
