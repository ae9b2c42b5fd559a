// The frame channel of an eval worker (docs/PROTOCOL.md, "Eval workers"): protocol-2 frames
// from the agent on fd 3, frames to it on fd 4. Requests are served one at a time in arrival
// order; a few ops (reseed) act at once when read. A bad frame is answered with an ERROR (its
// id when the header is readable, else 0) and never stops the worker. The peer is the agent,
// which already validated the host's frames, but nothing here relies on that.
import { once } from 'node:events';
import { Socket } from 'node:net';
import type { GuestErrorCode } from '../../protocol/frames.js';
import { MAX_ERROR_MESSAGE_CHARS, MAX_FRAME_BYTES } from '../../protocol/limits.js';
import { LineSplitter } from '../../protocol/lines.js';
import { decodeWireFrame, encodeWireFrame, type WireRecord } from '../../protocol/wire.js';
import { GuestError } from '../errors.js';

export type Reply = { ok: WireRecord } | { error: GuestErrorCode; message: string };

export interface WorkerOps {
  /** Served in arrival order, one at a time; a thrown GuestError becomes its ERROR reply. */
  queued: Record<string, (params: WireRecord, id: number) => Promise<WireRecord> | WireRecord>;
  /** Run as soon as the frame is read, even while a queued request runs; no reply for id 0. */
  immediate: Record<string, (params: WireRecord, id: number) => void>;
}

/** Queued requests beyond which the worker stops reading its input until it catches up. */
const MAX_QUEUED = 64;
const HEADER_BYTES = 9;

interface Pending {
  id: number;
  op: string;
  params: WireRecord;
}

export class WorkerChannel {
  private readonly queue: Pending[] = [];
  private running = false;
  private closed = false;
  private readonly splitter: LineSplitter;

  constructor(
    private readonly name: string,
    private readonly ops: WorkerOps,
    private readonly input: Socket,
    private readonly output: Socket,
    private readonly onClose: () => void,
  ) {
    this.splitter = new LineSplitter(
      MAX_FRAME_BYTES,
      (frame) => this.onFrame(frame),
      (big) =>
        this.send(frameIdOf(big.head), {
          error: 'too_large',
          message: `${this.name}: frame of ${big.bytes} bytes is over the ${MAX_FRAME_BYTES}-byte limit`,
        }),
    );
    input.on('data', (chunk: Buffer) => this.splitter.push(chunk));
    input.on('end', () => this.close());
    input.on('error', () => this.close());
    output.on('error', () => this.close());
  }

  /** Opens the worker's fds 3 (frames in) and 4 (frames out): pipes or sockets. */
  static open(name: string, ops: WorkerOps, onClose: () => void, fds = { input: 3, output: 4 }): WorkerChannel {
    const input = new Socket({ fd: fds.input, readable: true, writable: false });
    const output = new Socket({ fd: fds.output, readable: false, writable: true });
    return new WorkerChannel(name, ops, input, output, onClose);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }

  private onFrame(encoded: Buffer): void {
    let frame: ReturnType<typeof decodeWireFrame>;
    try {
      frame = decodeWireFrame(encoded);
    } catch (err) {
      this.send(frameIdOf(encoded), { error: 'bad_request', message: `${this.name}: ${messageOf(err)}` });
      return;
    }
    const { id, kind, payload } = frame;
    if (kind !== 'request' || !isRecord(payload)) {
      this.send(id, { error: 'bad_request', message: `${this.name}: unexpected ${kind.toUpperCase()} frame` });
      return;
    }
    const op = payload.op;
    if (typeof op !== 'string') {
      this.send(id, { error: 'bad_request', message: `${this.name}: request without a string op` });
      return;
    }
    const immediate = Object.hasOwn(this.ops.immediate, op) ? this.ops.immediate[op] : undefined;
    if (immediate) {
      try {
        immediate(payload, id);
        if (id !== 0) this.send(id, { ok: {} });
      } catch (err) {
        this.send(id, errorReply(err));
      }
      return;
    }
    if (!Object.hasOwn(this.ops.queued, op)) {
      this.send(id, { error: 'unknown_op', message: `${this.name}: unknown op ${JSON.stringify(op.slice(0, 64))}` });
      return;
    }
    this.queue.push({ id, op, params: payload });
    if (this.queue.length >= MAX_QUEUED) this.input.pause();
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        if (this.queue.length < MAX_QUEUED / 2) this.input.resume();
        let reply: Reply;
        try {
          reply = { ok: await this.ops.queued[next.op]!(next.params, next.id) };
        } catch (err) {
          reply = errorReply(err);
        }
        // Back-pressure: the next request waits until the agent has taken this reply.
        if (!this.send(next.id, reply) && !this.closed) await once(this.output, 'drain');
      }
    } catch {
      this.close(); // the output failed while we waited for it to drain
    } finally {
      this.running = false;
    }
  }

  /** Writes one reply frame; false when the output buffer is full (wait for 'drain'). */
  private send(id: number, reply: Reply): boolean {
    if (this.closed) return true;
    let frame: Buffer;
    try {
      frame = encodeReply(id, reply);
    } catch (err) {
      frame = encodeReply(id, { error: 'internal', message: `${this.name}: reply not encodable: ${messageOf(err)}` });
    }
    if (frame.length - 1 > MAX_FRAME_BYTES) {
      frame = encodeReply(id, {
        error: 'too_large',
        message: `${this.name}: reply of ${frame.length - 1} bytes is over the ${MAX_FRAME_BYTES}-byte frame limit`,
      });
    }
    return this.output.write(frame);
  }
}

function isRecord(payload: Uint8Array | WireRecord): payload is WireRecord {
  return !(payload instanceof Uint8Array);
}

function encodeReply(id: number, reply: Reply): Buffer {
  if ('ok' in reply) return encodeWireFrame('ok', id, reply.ok);
  return encodeWireFrame('error', id, { code: reply.error, message: reply.message.slice(0, MAX_ERROR_MESSAGE_CHARS) });
}

function errorReply(err: unknown): Reply {
  if (err instanceof GuestError) return { error: err.code, message: err.message };
  return { error: 'internal', message: messageOf(err) };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The request id of a frame that may not decode (COBS bytes, delimiter excluded, possibly
 * only its first bytes): its header is decoded as far as it goes. 0 when unreadable.
 */
export function frameIdOf(encoded: Uint8Array): number {
  const head: number[] = [];
  let r = 0;
  while (r < encoded.length && head.length < HEADER_BYTES) {
    const code = encoded[r++] as number;
    if (code === 0) break;
    const end = Math.min(r + code - 1, encoded.length);
    while (r < end && head.length < HEADER_BYTES) head.push(encoded[r++] as number);
    if (r < end) break;
    if (code !== 0xff && r < encoded.length) head.push(0);
  }
  if (head.length < HEADER_BYTES) return 0;
  const id = Buffer.from(head).readBigUInt64LE(1);
  return id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(id) : 0;
}
