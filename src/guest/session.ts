// One host connection: splits the byte stream into frames, runs requests concurrently (up to
// MAX_CONCURRENT_REQUESTS), routes upload chunks to their files.write, and answers every
// problem with an error frame instead of throwing. When the host goes away, the requests it
// started are aborted: nobody is left to read their output. Agent state (background
// processes, eval contexts) lives outside the session and survives it.
import {
  isOp,
  LineSplitter,
  MAX_CONCURRENT_REQUESTS,
  MAX_FRAME_BYTES,
  OPS,
  parseHostFrame,
  sniffFrameId,
  type HostFrame,
  type Op,
  type ParamsOf,
  type ResultOf,
  type StreamKind,
} from '../protocol/index.js';
import { GuestError, toWireError } from './errors.js';
import type { GuestLog } from './log.js';
import { UploadChannel } from './upload.js';
import type { FrameWriter } from './writer.js';

export interface RequestContext {
  id: number;
  /** Aborted by `cancel` or when the host disconnects; the reason is a GuestError. */
  signal: AbortSignal;
  /** Sends a stream frame; resolves once written (back-pressure). */
  stream(kind: StreamKind, data: Buffer): Promise<void>;
  /** The incoming data of a files.write. */
  upload: UploadChannel | undefined;
}

export type Handlers = {
  [K in Exclude<Op, 'cancel'>]: (params: ParamsOf<K>, ctx: RequestContext) => Promise<ResultOf<K>>;
};

interface Active {
  controller: AbortController;
  upload: UploadChannel | undefined;
}

export class Session {
  private readonly active = new Map<number, Active>();
  /** Upload pushes from the chunk being parsed; the reader waits on them before reading on. */
  private backpressure: Promise<void>[] = [];

  constructor(
    private readonly handlers: Handlers,
    private readonly writer: FrameWriter,
    private readonly log: GuestLog,
  ) {}

  async run(input: AsyncIterable<Uint8Array>): Promise<void> {
    const splitter = new LineSplitter(
      MAX_FRAME_BYTES,
      (line) => this.onLine(line),
      (big) =>
        this.reply(
          sniffFrameId(big.head) ?? null,
          new GuestError('too_large', `frame of ${big.bytes} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`),
        ),
    );
    try {
      for await (const chunk of input) {
        splitter.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if (this.backpressure.length > 0) {
          const waits = this.backpressure;
          this.backpressure = [];
          await Promise.all(waits);
        }
      }
    } catch (err) {
      this.log.warn('host connection failed', { error: String(err) });
    } finally {
      this.end();
    }
  }

  private end(): void {
    for (const { controller, upload } of this.active.values()) {
      controller.abort(new GuestError('cancelled', 'host disconnected'));
      upload?.close();
    }
  }

  private onLine(line: Buffer): void {
    let value: unknown;
    try {
      value = JSON.parse(line.toString('utf8'));
    } catch {
      this.reply(null, new GuestError('bad_request', `invalid JSON frame of ${line.length} bytes`));
      return;
    }
    let frame: HostFrame;
    try {
      frame = parseHostFrame(value);
    } catch (err) {
      const id = (value as { id?: unknown } | null)?.id;
      this.reply(Number.isSafeInteger(id) && (id as number) >= 0 ? (id as number) : null, err);
      return;
    }
    if (frame.kind === 'request') {
      this.start(frame.id, frame.op, frame.params);
      return;
    }
    // Chunks for an upload that already failed or was cancelled are dropped silently:
    // the host learns of the failure from the final reply.
    const upload = this.active.get(frame.id)?.upload;
    if (!upload) return;
    const item =
      frame.kind === 'data'
        ? { kind: 'data' as const, data: Buffer.from(frame.data, 'base64') }
        : { kind: 'end' as const, sha256: frame.sha256 };
    this.backpressure.push(upload.push(item));
  }

  private start(id: number, op: string, rawParams: Record<string, unknown>): void {
    if (!isOp(op)) return this.reply(id, new GuestError('unknown_op', `unknown op ${JSON.stringify(op)}`));
    if (this.active.has(id))
      return this.reply(id, new GuestError('bad_request', `request id ${id} is already in flight`));
    if (op === 'cancel') return this.cancel(id, rawParams);
    if (this.active.size >= MAX_CONCURRENT_REQUESTS) {
      return this.reply(
        id,
        new GuestError('busy', `${MAX_CONCURRENT_REQUESTS} requests already in flight on this connection`),
      );
    }
    let params: unknown;
    try {
      params = OPS[op].params(rawParams, op);
    } catch (err) {
      return this.reply(id, err);
    }
    const controller = new AbortController();
    const upload = op === 'files.write' ? new UploadChannel() : undefined;
    this.active.set(id, { controller, upload });
    const ctx: RequestContext = {
      id,
      signal: controller.signal,
      upload,
      stream: (kind, data) => this.writer.send({ id, stream: kind, data: data.toString('base64') }),
    };
    const handler = this.handlers[op] as (params: unknown, ctx: RequestContext) => Promise<unknown>;
    handler(params, ctx)
      .then(
        (result) => this.writer.send({ id, ok: true, result }),
        (err: unknown) => this.reply(id, err),
      )
      .finally(() => {
        this.active.delete(id);
        upload?.close();
      });
  }

  private cancel(id: number, rawParams: Record<string, unknown>): void {
    let target: number;
    try {
      target = OPS.cancel.params(rawParams, 'cancel').target;
    } catch (err) {
      return this.reply(id, err);
    }
    const victim = this.active.get(target);
    victim?.controller.abort(new GuestError('cancelled', `request ${target} cancelled by the host`));
    victim?.upload?.close();
    void this.writer.send({ id, ok: true, result: { cancelled: victim !== undefined } });
  }

  private reply(id: number | null, err: unknown): void {
    const error = toWireError(err);
    if (error.code === 'internal') this.log.error('request failed', { id, error: error.message });
    void this.writer.send({ id, ok: false, error });
  }
}
