// One host connection to a guest agent: request ids, the pending table, frame validation and
// every bound that keeps a hostile guest from hurting the host process. The guest is
// untrusted: each frame is size-checked before it is buffered (LineSplitter on the 0x00
// delimiter), decoded (decodeWireFrame: bounds-checked binary), checked field by field
// (parseGuestFrame, OPS[op].result), and anything wrong is logged and dropped or fails only
// the request it names. Nothing a guest sends can throw out of here.
import { randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  CANCELLABLE_OPS,
  decodeWireFrame,
  encodeRequest,
  encodeWireFrame,
  LineSplitter,
  MAX_CONCURRENT_REQUESTS,
  MAX_FRAME_BYTES,
  OPS,
  parseGuestFrame,
  ProtocolError,
  sniffFrameId,
  type GuestFrame,
  type Op,
  type ParamsOf,
  type ResultOf,
  type StreamKind,
} from '../protocol/index.js';
import { abortError } from '../lib/deadline.js';
import { ForkdError, messageOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { errorFromGuest, protocolViolation } from './errors.js';

export interface CallOptions {
  /** Infinity: no deadline (an interactive process; its `signal` or the connection ends it). */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Receives the request's stream frames; throwing fails the request. */
  onStream?: ((kind: StreamKind, data: Buffer) => void) | undefined;
  /** Receives the pid of an `announce` exec (once, before any output); throwing fails the request. */
  onStarted?: ((pid: number) => void) | undefined;
  /** Sends what follows the request frame (upload chunks); `done` fires once it settles. */
  upload?: ((id: number, done: AbortSignal) => Promise<void>) | undefined;
}

interface Pending {
  op: Op;
  onStream: CallOptions['onStream'];
  onStarted: CallOptions['onStarted'];
  started: boolean;
  finish(err: Error | undefined, result?: unknown): void;
}

/** Log the first violations of a connection, then only every Nth: a flood must not flood logs. */
const LOGGED_VIOLATIONS = 20;
const VIOLATION_LOG_EVERY = 1000;

export class AgentConnection {
  private readonly pending = new Map<number, Pending>();
  /**
   * Ids start at a random point: a reply the guest wrote for an earlier host connection
   * (the parent of a snapshot) can reach this one, and must not match a request of ours.
   */
  private nextId = randomInt(2 ** 20, 2 ** 46);
  private closedError: ForkdError | undefined;
  private violations = 0;
  private buffered = 0;
  readonly closed: Promise<void>;

  constructor(
    private readonly socket: Socket,
    private readonly log: Logger,
    private readonly maxBufferedBytes: number,
  ) {
    const splitter = new LineSplitter(
      MAX_FRAME_BYTES,
      (line) => this.onLine(line),
      (big) => {
        const id = sniffFrameId(big.head);
        this.violation(`frame of ${big.bytes} bytes over the ${MAX_FRAME_BYTES}-byte limit`, id);
      },
    );
    // Every upload in flight may wait for 'drain' at once.
    socket.setMaxListeners(2 * MAX_CONCURRENT_REQUESTS + 10);
    socket.on('data', (chunk: Buffer) => splitter.push(chunk));
    socket.on('error', (err) => this.log.warn('agent socket error', { error: err.message }));
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.shutdown(new ForkdError('agent_error', 'agent connection closed'));
        resolve();
      }),
    );
  }

  get isClosed(): boolean {
    return this.closedError !== undefined;
  }

  /** Accounts bytes held for results (exec output, file reads) against the per-client budget. */
  reserve(bytes: number): boolean {
    if (this.buffered + bytes > this.maxBufferedBytes) return false;
    this.buffered += bytes;
    return true;
  }

  release(bytes: number): void {
    this.buffered -= bytes;
  }

  /** One delimiter ahead of any frame: ends a partial frame the guest may hold from a previous host. */
  writeDelimiter(): void {
    if (!this.closedError) this.socket.write(Buffer.alloc(1));
  }

  call<K extends Op>(op: K, params: ParamsOf<K>, opts: CallOptions): Promise<ResultOf<K>> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.pending.size >= MAX_CONCURRENT_REQUESTS) {
      return Promise.reject(
        new ForkdError('busy', `agent ${op}: ${MAX_CONCURRENT_REQUESTS} requests already in flight`),
      );
    }
    const id = this.nextId++;
    let frame: Buffer;
    try {
      OPS[op].params(params, op); // the same check the guest makes, with a host-side message
      frame = encodeRequest(id, op, params);
    } catch (err) {
      return Promise.reject(new ForkdError('invalid_argument', `agent ${op}: ${messageOf(err)}`, { cause: err }));
    }
    if (frame.length - 1 > MAX_FRAME_BYTES) {
      return Promise.reject(
        new ForkdError('payload_too_large', `agent ${op}: request is over the ${MAX_FRAME_BYTES}-byte frame limit`),
      );
    }
    const timeout = Number.isFinite(opts.timeoutMs)
      ? AbortSignal.timeout(Math.max(1, Math.ceil(opts.timeoutMs)))
      : new AbortController().signal; // never aborts
    const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
    return new Promise<ResultOf<K>>((resolve, reject) => {
      const done = new AbortController();
      const finish = (err: Error | undefined, result?: unknown): void => {
        if (!this.pending.delete(id)) return;
        signal.removeEventListener('abort', onAbort);
        done.abort();
        if (err) reject(err);
        else resolve(result as ResultOf<K>);
      };
      const onAbort = (): void => {
        const err = timeout.aborted
          ? new ForkdError('timeout', `agent ${op}: no reply within ${opts.timeoutMs} ms`, { details: { op } })
          : abortError(signal, `agent ${op}`);
        this.stop(id, err);
      };
      this.pending.set(id, { op, onStream: opts.onStream, onStarted: opts.onStarted, started: false, finish });
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.socket.write(frame);
      opts
        .upload?.(id, done.signal)
        .catch((err: unknown) => this.stop(id, err instanceof Error ? err : new Error(String(err))));
    });
  }

  /** Writes an upload frame (DATA chunk or END), waiting for the socket to drain first if its buffer is full. */
  async send(
    kind: 'data' | 'end',
    id: number,
    payload: Buffer | { sha256: string },
    signal: AbortSignal,
  ): Promise<void> {
    if (this.socket.writableNeedDrain && !this.closedError) await this.waitDrain(signal);
    signal.throwIfAborted();
    if (this.closedError) throw this.closedError;
    this.socket.write(encodeWireFrame(kind, id, payload));
  }

  private waitDrain(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        this.socket.off('drain', ready).off('close', ready);
        signal.removeEventListener('abort', aborted);
      };
      const ready = (): void => {
        cleanup();
        resolve();
      };
      const aborted = (): void => {
        cleanup();
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      this.socket.on('drain', ready).on('close', ready);
      signal.addEventListener('abort', aborted, { once: true });
    });
  }

  /** Idempotent. Fails every pending request. */
  close(): void {
    this.shutdown(new ForkdError('agent_error', 'agent connection closed by the host'));
    this.socket.destroy();
  }

  /** Fails one request and, if the guest may still be working on it, tells it to stop. */
  private stop(id: number, err: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    p.finish(err);
    if (CANCELLABLE_OPS.has(p.op) && !this.closedError) {
      this.call('cancel', { target: id }, { timeoutMs: 5000 }).catch(() => undefined); // best effort: the caller already has its error; a cancel that fails means the agent or the connection is gone
    }
  }

  private shutdown(err: ForkdError): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of [...this.pending.values()]) p.finish(err);
  }

  private onLine(encoded: Buffer): void {
    let frame: GuestFrame;
    try {
      frame = parseGuestFrame(decodeWireFrame(encoded));
    } catch (err) {
      return this.violation(messageOf(err), sniffFrameId(encoded));
    }
    if (frame.id === null) {
      if ('error' in frame)
        this.log.warn('agent reported an error outside any request', {
          code: frame.error.code,
          error: frame.error.message,
        });
      return;
    }
    const p = this.pending.get(frame.id);
    if (!p) {
      // Expected after a restore: replies to the snapshot parent's requests, or to ours that timed out.
      this.log.debug('agent frame for an unknown request dropped', { id: frame.id });
      return;
    }
    if ('started' in frame) {
      if (!p.onStarted || p.started) {
        return this.violation(`${p.started ? 'a second' : 'a'} started frame for ${p.op}`, frame.id);
      }
      p.started = true;
      try {
        p.onStarted(frame.started.pid);
      } catch (err) {
        this.stop(frame.id, err instanceof Error ? err : new Error(String(err)));
      }
      return;
    }
    if ('stream' in frame) {
      if (!p.onStream) return this.violation(`${frame.stream} data for ${p.op}, which streams nothing`, frame.id);
      try {
        p.onStream(frame.stream, frame.data);
      } catch (err) {
        this.stop(frame.id, err instanceof Error ? err : new Error(String(err)));
      }
      return;
    }
    if (!frame.ok) return p.finish(errorFromGuest(p.op, frame.error));
    let result: unknown;
    try {
      result = OPS[p.op].result(frame.result, `${p.op} result`);
    } catch (err) {
      return this.violation(err instanceof ProtocolError ? err.message : messageOf(err), frame.id);
    }
    p.finish(undefined, result);
  }

  /** A bad frame: logged (rate-limited); fails the request it names, if that one is ours. */
  private violation(message: string, id: number | undefined): void {
    this.violations++;
    if (this.violations <= LOGGED_VIOLATIONS || this.violations % VIOLATION_LOG_EVERY === 0) {
      this.log.warn('agent protocol violation', { error: message, id, violations: this.violations });
    }
    if (id !== undefined) {
      const p = this.pending.get(id);
      if (p) this.stop(id, protocolViolation(p.op, message));
    }
  }
}
