// The audit log: one JSON line per request (written by the outermost layer, so 401s and 404s
// are there too) and one per state change. Never a token, never a body. Opened O_APPEND (each
// line is one write(2), so concurrent writers and logrotate's copytruncate do not interleave
// or clobber); SIGHUP reopens the path (logrotate's create mode).
//
// The audit log is a security control (operators feed it to their SIEM), so it fails closed
// (docs/SECURITY.md): the daemon does not start when it cannot open the file and append a
// line to it; at run time, once a write fails, `available` is false and the pipeline refuses
// every request that could change state (503 audit_unavailable) until a line is written
// again. Records that could not be written go to the daemon log instead of being dropped.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ForkdError, errnoOf, messageOf } from '../lib/errors.js';
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
  /** Why the last write failed; undefined while writes succeed. */
  #failure: string | undefined;

  private constructor(
    readonly path: string,
    private readonly logger: Logger,
  ) {
    this.#fd = AuditLog.#open(path);
  }

  /** Opens the file and appends a first line to it; throws a one-line ForkdError if either fails. */
  static open(path: string, logger: Logger, first: Record<string, unknown> = {}): AuditLog {
    let log: AuditLog;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
      log = new AuditLog(path, logger);
    } catch (err) {
      throw unwritable(path, err);
    }
    const failed = log.#append({
      ts: new Date().toISOString(),
      type: 'event',
      event: 'audit.opened',
      pid: process.pid,
      ...first,
    });
    if (failed !== undefined) {
      log.close();
      throw unwritable(path, failed);
    }
    return log;
  }

  static #open(path: string): number {
    return openSync(path, 'a', 0o640);
  }

  /** False once a write has failed, until one succeeds again. */
  get available(): boolean {
    return this.#failure === undefined;
  }

  /** The refusal a state-changing request gets while the log cannot be written. */
  unavailableError(): ForkdError {
    return new ForkdError(
      'audit_unavailable',
      `the audit log ${this.path} cannot be written (${this.#failure ?? 'unknown error'}), so requests that change state are refused until it can; free space or fix the file, then send SIGHUP to reopen it`,
      { details: { retryAfterSecs: 5 } },
    );
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
    if (old >= 0) closeSync(old);
    this.event({ event: 'audit.reopened', pid: process.pid });
  }

  /** Later writes fail (EBADF) instead of landing in whatever file reuses the descriptor number. */
  close(): void {
    const fd = this.#fd;
    this.#fd = -1;
    try {
      if (fd >= 0) closeSync(fd);
    } catch {
      /* already closed */
    }
  }

  /** One line, one write(2); the errno (or message) when it failed. */
  #append(record: Record<string, unknown>): string | undefined {
    const line = `${JSON.stringify(record)}\n`;
    try {
      const n = writeSync(this.#fd, line);
      if (n !== Buffer.byteLength(line)) return `short write: ${n} of ${Buffer.byteLength(line)} bytes`;
      return undefined;
    } catch (err) {
      return errnoOf(err) ?? messageOf(err);
    }
  }

  #write(record: Record<string, unknown>): void {
    const failed = this.#append(record);
    if (failed !== undefined) {
      if (this.#failure === undefined)
        this.logger.error('cannot write the audit log: refusing state-changing requests until it can be written', {
          path: this.path,
          error: failed,
        });
      this.#failure = failed;
      // Not dropped: the record goes to the daemon log (it never holds a token or a body).
      this.logger.error('audit record not written', { audit: record });
      return;
    }
    if (this.#failure !== undefined) {
      this.#failure = undefined;
      this.logger.info('audit log writable again', { path: this.path });
    }
  }
}

function unwritable(path: string, err: unknown): ForkdError {
  const why = typeof err === 'string' ? err : messageOf(err);
  return new ForkdError(
    'host_error',
    `cannot append to the audit log ${path} (${why.split('\n')[0]}); fix the path (a writable file in a writable directory) or pass --audit-log FILE`,
    { cause: err },
  );
}
