// Per-sandbox access tokens and environment for the E2B-compatible surface (src/api/e2b). E2B
// issues each sandbox a token its in-sandbox API requires (`envdAccessToken`) and applies a
// sandbox's `envVars` to every command; both are kept in SQLite beside the sandbox's row, so a
// restarted daemon still accepts the token a client holds and still applies the variables.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { StateStore } from '../state/store.js';

/** 32 random bytes, base64url: unguessable, and safe in a header. */
const TOKEN_BYTES = 32;

export class SandboxAccess {
  constructor(private readonly store: StateStore) {}

  /** A new token for `id` (replacing any), with the environment its commands get. */
  issue(id: string, env: Record<string, string> = {}): string {
    const accessToken = randomBytes(TOKEN_BYTES).toString('base64url');
    this.store.putSandboxAccess(id, { accessToken, env });
    return accessToken;
  }

  /** The sandbox's token, issued now (with no environment) if it never had one (made by forkd's own API). */
  tokenOf(id: string): string {
    return this.store.getSandboxAccess(id)?.accessToken ?? this.issue(id);
  }

  /** Environment added to every command of the sandbox (empty if none was set). */
  envOf(id: string): Record<string, string> {
    return this.store.getSandboxAccess(id)?.env ?? {};
  }

  /** Constant-time comparison (of digests, so the length does not leak either). */
  check(id: string, presented: string | undefined): boolean {
    const stored = this.store.getSandboxAccess(id)?.accessToken;
    if (stored === undefined || presented === undefined) return false;
    return timingSafeEqual(digest(stored), digest(presented));
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
