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
