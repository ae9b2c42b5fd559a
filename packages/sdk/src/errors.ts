// The SDK's error class: the API's `code` and HTTP status when the daemon answered, or a
// client code (unreachable, aborted, client_timeout, protocol_error) with status 0 when not.
// CommandExitError (E2B's name) is one of them: a command that did not exit 0.
import type { ApiErrorCode, ClientErrorCode } from './types.js';

export class ForkdApiError extends Error {
  readonly code: ApiErrorCode | ClientErrorCode;
  /** HTTP status of the answer; 0 when no answer arrived. */
  readonly status: number;
  /** The daemon's X-Request-Id (look it up in its log and audit log). */
  readonly requestId: string | undefined;

  constructor(
    code: ApiErrorCode | ClientErrorCode,
    status: number,
    message: string,
    options?: { cause?: unknown; requestId?: string | undefined },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ForkdApiError';
    this.code = code;
    this.status = status;
    this.requestId = options?.requestId;
  }
}

export function isForkdApiError(err: unknown, code?: string): err is ForkdApiError {
  return err instanceof ForkdApiError && (code === undefined || err.code === code);
}

/** What a finished command gave (`commands.run`, a handle's `wait()`). */
export interface CommandResult {
  /** null when a signal ended it (`signal`), e.g. at its timeout. */
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
  durationMs: number;
  /** Why it failed, when it did (as E2B's CommandResult.error). */
  error?: string;
}

/**
 * Thrown by `commands.run` (and a background handle's `wait()`) when the command did not exit
 * 0: a non-zero code, a signal, its timeout. `throwOnNonZeroExit: false` returns the result
 * instead. Its fields are the result's; `status` is 0 (the daemon answered fine).
 */
export class CommandExitError extends ForkdApiError implements CommandResult {
  readonly result: CommandResult;
  constructor(result: CommandResult) {
    super('exit_error', 0, describeExit(result));
    this.name = 'CommandExitError';
    this.result = result;
  }
  get exitCode(): number | null {
    return this.result.exitCode;
  }
  get signal(): string | null {
    return this.result.signal;
  }
  get stdout(): string {
    return this.result.stdout;
  }
  get stderr(): string {
    return this.result.stderr;
  }
  get truncated(): boolean {
    return this.result.truncated;
  }
  get timedOut(): boolean {
    return this.result.timedOut;
  }
  get durationMs(): number {
    return this.result.durationMs;
  }
  get error(): string {
    return this.message;
  }
}

export function describeExit(r: CommandResult): string {
  if (r.timedOut) return `command timed out after ${Math.round(r.durationMs)} ms (its process group was killed)`;
  if (r.exitCode === null) return `command was killed by ${r.signal ?? 'a signal'}`;
  return `command exited with code ${r.exitCode}`;
}
