// The audit log: one JSON line per request (written by the outermost layer, so 401s and 404s
// are there too) and one per state change. Never a token, never a body. Opened O_APPEND (each
// line is one write(2), so concurrent writers and logrotate's copytruncate do not interleave
// or clobber); SIGHUP reopens the path (logrotate's create mode).
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../lib/log.js';

export interface RequestRecord {
  method: string;
  path: string;
  status: number;
  latency_ms: number;
  remote: string;
  user_agent: string;
  request_id: string;
  auth: string;
  route?: string | undefined;
  aborted?: boolean | undefined;
}

export class AuditLog {
  #fd: number;
  #warned = false;

  private constructor(
    readonly path: string,
    private readonly logger: Logger,
  ) {
    this.#fd = AuditLog.#open(path);
  }

  static open(path: string, logger: Logger): AuditLog {
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    return new AuditLog(path, logger);
  }

  static #open(path: string): number {
    return openSync(path, 'a', 0o640);
  }

  request(r: RequestRecord): void {
    this.#write({ ts: new Date().toISOString(), type: 'request', ...r });
  }

  event(e: { event: string } & Record<string, unknown>): void {
    this.#write({ ts: new Date().toISOString(), type: 'event', ...e });
  }

  /** SIGHUP: open the path anew (after rotation), then close the old descriptor. */
  reopen(): void {
    const fd = AuditLog.#open(this.path);
    const old = this.#fd;
    this.#fd = fd;
    closeSync(old);
    this.#warned = false;
  }

  close(): void {
    try {
      closeSync(this.#fd);
    } catch {
      /* already closed */
    }
  }

  #write(record: Record<string, unknown>): void {
    try {
      writeSync(this.#fd, `${JSON.stringify(record)}\n`);
    } catch (err) {
      // A full disk must not take the API down; say so once per descriptor.
      if (!this.#warned) this.logger.error('cannot write the audit log', { path: this.path, error: String(err) });
      this.#warned = true;
    }
  }
}
