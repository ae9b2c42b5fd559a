// Bearer-token auth. The token comes from a file read once at start-up (validated there, see
// posture.ts); requests are compared in constant time on sha256 digests, so neither the
// content nor the length of the token leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto';

export type AuthOutcome = 'ok' | 'missing' | 'invalid' | 'exempt' | 'disabled';

export class BearerAuth {
  readonly #digest: Buffer | undefined;

  /** No token: auth is disabled (loopback or unix-socket binds only; posture.ts enforces that). */
  constructor(token: string | undefined) {
    this.#digest = token === undefined ? undefined : sha256(token);
  }

  get enabled(): boolean {
    return this.#digest !== undefined;
  }

  /** GET /healthz is the one route without auth (for load balancers and systemd checks). */
  static exempt(method: string, path: string): boolean {
    return method === 'GET' && path === '/healthz';
  }

  check(header: string | undefined): AuthOutcome {
    if (!this.#digest) return 'disabled';
    const match = /^Bearer +(\S+) *$/i.exec(header ?? '');
    if (!match) return 'missing';
    return timingSafeEqual(sha256(match[1]!), this.#digest) ? 'ok' : 'invalid';
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/**
 * Throttles wrong tokens per client address: a token bucket of `burst` failures that refills
 * `perSec` a second. Over it, a request whose token is wrong gets 429 with Retry-After instead
 * of 401. A request with the right token is never throttled (it is checked first), so a flood
 * from a shared address (NAT, loopback) cannot lock the legitimate client out; the token's
 * entropy (>= 16 bytes) is what makes guessing hopeless, this bounds what a flood costs and
 * makes it visible (forkd_auth_failures_total{reason="throttled"}). Missing tokens are not
 * guesses and are not counted. Memory is bounded: at most `maxClients` addresses are tracked,
 * the least recently failing one is forgotten first.
 */
export class AuthThrottle {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly opts: { burst: number; perSec: number; maxClients: number } = {
      burst: 100,
      perSec: 1,
      maxClients: 10_000,
    },
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Records one wrong token from `client`; returns the seconds to wait when over budget. */
  fail(client: string): number | undefined {
    const t = this.now();
    const b = this.#buckets.get(client) ?? { tokens: this.opts.burst, at: t };
    this.#buckets.delete(client); // re-inserted last: Map order is the eviction order
    b.tokens = Math.min(this.opts.burst, b.tokens + ((t - b.at) / 1000) * this.opts.perSec);
    b.at = t;
    let retryAfter: number | undefined;
    if (b.tokens >= 1) b.tokens -= 1;
    else retryAfter = Math.max(1, Math.ceil((1 - b.tokens) / this.opts.perSec));
    this.#buckets.set(client, b);
    while (this.#buckets.size > this.opts.maxClients) this.#buckets.delete(this.#buckets.keys().next().value!);
    return retryAfter;
  }

  get tracked(): number {
    return this.#buckets.size;
  }
}
