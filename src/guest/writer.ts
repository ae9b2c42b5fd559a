// Serializes frames onto the transport one at a time. Each `send` resolves once its bytes are
// written, which is the back-pressure exec and files.read wait on. A frame over the size
// limit is replaced by an error reply, so the host never has to discard one of ours.
import { encodeFrame, MAX_FRAME_BYTES } from '../protocol/index.js';
import type { GuestLog } from './log.js';

export type WriteFn = (bytes: Buffer) => Promise<void>;

export class FrameWriter {
  private tail: Promise<void> = Promise.resolve();
  private broken = false;

  constructor(
    private readonly write: WriteFn,
    private readonly log: GuestLog,
  ) {}

  /** Never rejects: a transport that failed means the host is gone, which the reader notices. */
  send(frame: { id: number | null } & Record<string, unknown>): Promise<void> {
    let bytes = Buffer.from(encodeFrame(frame));
    if (bytes.length > MAX_FRAME_BYTES + 1) {
      this.log.warn('reply over the frame limit replaced by an error', { id: frame.id, bytes: bytes.length });
      const message = `reply of ${bytes.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte frame limit`;
      bytes = Buffer.from(encodeFrame({ id: frame.id, ok: false, error: { code: 'too_large', message } }));
    }
    const next = this.tail.then(() =>
      this.write(bytes).then(
        () => {
          this.broken = false;
        },
        (err: unknown) => {
          if (!this.broken) this.log.warn('write to host failed', { error: String(err) });
          this.broken = true;
        },
      ),
    );
    this.tail = next;
    return next;
  }
}
