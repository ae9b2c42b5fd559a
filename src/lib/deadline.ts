// Every wait is bounded (STYLE: AbortSignal.any([AbortSignal.timeout(ms), signal])).
import { setTimeout as sleep } from 'node:timers/promises';
import { ForkdError } from './errors.js';

export function deadlineSignal(timeoutMs: number, parent?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return parent ? AbortSignal.any([timeout, parent]) : timeout;
}

/** Throws a ForkdError('timeout') if the signal was aborted by its timeout, else its reason. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (!signal?.aborted) return;
  throw abortError(signal, what);
}

export function abortError(signal: AbortSignal, what: string): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof ForkdError) return reason;
  if (reason instanceof DOMException && reason.name === 'TimeoutError') {
    return new ForkdError('timeout', `${what}: timed out`);
  }
  return new ForkdError('timeout', `${what}: aborted`, { cause: reason });
}

/**
 * Poll `check` until it returns a value other than undefined, or the signal fires.
 * Used only where the kernel or QEMU offers no event to wait on.
 */
export async function pollUntil<T>(
  check: () => Promise<T | undefined> | T | undefined,
  opts: { signal: AbortSignal; intervalMs: number; what: string },
): Promise<T> {
  for (;;) {
    throwIfAborted(opts.signal, opts.what);
    const value = await check();
    if (value !== undefined) return value;
    try {
      await sleep(opts.intervalMs, undefined, { signal: opts.signal });
    } catch {
      // sleep rejects only when the signal aborts: report that as the deadline or the caller's reason.
      throwIfAborted(opts.signal, opts.what);
    }
  }
}
