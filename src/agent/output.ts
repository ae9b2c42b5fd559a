// Collects a request's streamed bytes on the host, bounded twice: per stream (exec output is
// cut at maxBytes and flagged `truncated`) and per client (the connection's byte budget, so
// many requests together cannot exhaust the daemon either).
import type { AgentConnection } from './connection.js';

export class BoundedBuffer {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private reserved = 0;
  truncated = false;

  constructor(
    private readonly conn: AgentConnection,
    private readonly maxBytes: number,
  ) {}

  /** Keeps what fits; returns false if anything was dropped. */
  push(chunk: Buffer): boolean {
    const room = Math.min(chunk.length, this.maxBytes - this.bytes);
    if (room < chunk.length) this.truncated = true;
    if (room <= 0) return false;
    if (!this.conn.reserve(room)) {
      this.truncated = true;
      return false;
    }
    this.reserved += room;
    this.chunks.push(room === chunk.length ? chunk : chunk.subarray(0, room));
    this.bytes += room;
    return !this.truncated;
  }

  get length(): number {
    return this.bytes;
  }

  /** The collected bytes; gives the budget back (call once, when the request settled). */
  take(): Buffer {
    this.release();
    return Buffer.concat(this.chunks, this.bytes);
  }

  release(): void {
    this.conn.release(this.reserved);
    this.reserved = 0;
  }
}
