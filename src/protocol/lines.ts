// Splits a byte stream into delimiter-terminated frames (0x00 after COBS in protocol 2; a
// newline for line-based peers) without ever holding more than `maxLineBytes` of one: an
// oversized frame is counted and skipped up to its delimiter, so a hostile peer sending a
// 100 MB frame costs no more memory than a legal one.

export interface OversizedLine {
  /** Bytes of the skipped line, newline excluded. */
  bytes: number;
  /** Its first bytes, to find out which request it belonged to. */
  head: Buffer;
}

const HEAD_BYTES = 64;

export class LineSplitter {
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private skipping: OversizedLine | undefined;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: Buffer) => void,
    private readonly onOversized: (line: OversizedLine) => void,
    private readonly delimiter = 0,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start <= chunk.length) {
      const nl = chunk.indexOf(this.delimiter, start);
      const piece = chunk.subarray(start, nl === -1 ? chunk.length : nl);
      this.take(piece);
      if (nl === -1) return;
      this.endLine();
      start = nl + 1;
    }
  }

  /** Forgets a partial line (the peer went away mid-frame). */
  reset(): void {
    this.parts = [];
    this.partsBytes = 0;
    this.skipping = undefined;
  }

  /** Bytes currently held for an incomplete line. */
  get bufferedBytes(): number {
    return this.partsBytes;
  }

  private take(piece: Buffer): void {
    if (piece.length === 0) return;
    if (this.skipping) {
      this.skipping.bytes += piece.length;
      return;
    }
    if (this.partsBytes + piece.length <= this.maxLineBytes) {
      this.parts.push(piece);
      this.partsBytes += piece.length;
      return;
    }
    const head = Buffer.concat([...this.parts, piece.subarray(0, HEAD_BYTES)]).subarray(0, HEAD_BYTES);
    this.skipping = { bytes: this.partsBytes + piece.length, head: Buffer.from(head) };
    this.parts = [];
    this.partsBytes = 0;
  }

  private endLine(): void {
    if (this.skipping) {
      const skipped = this.skipping;
      this.skipping = undefined;
      this.onOversized(skipped);
      return;
    }
    const parts = this.parts;
    const line = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    this.parts = [];
    this.partsBytes = 0;
    // Empty frames are legal padding: the host sends a delimiter on connect to end any stale partial frame.
    if (line === undefined || line.length === 0) return;
    this.onLine(line);
  }
}
