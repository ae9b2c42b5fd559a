// `client.files`: file operations in the guest. Data moves in FILE_CHUNK_BYTES frames; reads
// are checked against the size and sha256 the guest reports, writes carry the host's sha256
// so the guest can refuse a corrupted upload before it renames the temp file into place.
import { createHash } from 'node:crypto';
import { FILE_CHUNK_BYTES, MAX_FILE_BYTES, type FileEntry, type ResultOf } from '../protocol/index.js';
import { ForkdError } from '../lib/errors.js';
import type { AgentConnection } from './connection.js';
import { BoundedBuffer } from './output.js';
import { protocolViolation } from './errors.js';

export interface RequestOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Default deadline for file transfers (a 256 MiB file under TCG takes a while). */
export const DEFAULT_FILE_TIMEOUT_MS = 120_000;

export type FileList = ResultOf<'files.list'>;

export class AgentFiles {
  constructor(
    private readonly conn: AgentConnection,
    private readonly defaultTimeoutMs: number,
  ) {}

  async read(path: string, opts: RequestOptions = {}): Promise<Buffer> {
    const data = new BoundedBuffer(this.conn, MAX_FILE_BYTES);
    try {
      const result = await this.conn.call(
        'files.read',
        { path },
        {
          timeoutMs: opts.timeoutMs ?? DEFAULT_FILE_TIMEOUT_MS,
          signal: opts.signal,
          onStream: (kind, chunk) => {
            if (kind !== 'data') throw protocolViolation('files.read', `${kind} frame in a file read`);
            if (!data.push(chunk)) {
              throw new ForkdError(
                'payload_too_large',
                `agent files.read ${path}: over ${MAX_FILE_BYTES} bytes or the client's memory budget`,
              );
            }
          },
        },
      );
      const bytes = data.take();
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      if (bytes.length !== result.size || sha256 !== result.sha256) {
        throw protocolViolation(
          'files.read',
          `${path}: received ${bytes.length} bytes (sha256 ${sha256}), agent reported ${result.size} (${result.sha256})`,
        );
      }
      return bytes;
    } finally {
      data.release();
    }
  }

  /** Atomic in the guest: a temp file in the same directory, renamed over `path` when complete. */
  async write(
    path: string,
    data: Buffer | Uint8Array | string,
    opts: RequestOptions & { mode?: number } = {},
  ): Promise<ResultOf<'files.write'>> {
    const bytes =
      typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.length > MAX_FILE_BYTES) {
      throw new ForkdError(
        'payload_too_large',
        `files.write ${path}: ${bytes.length} bytes is over the ${MAX_FILE_BYTES}-byte limit`,
      );
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    return this.conn.call(
      'files.write',
      { path, size: bytes.length, ...(opts.mode === undefined ? {} : { mode: opts.mode }) },
      {
        timeoutMs: opts.timeoutMs ?? DEFAULT_FILE_TIMEOUT_MS,
        signal: opts.signal,
        upload: async (id, done) => {
          for (let off = 0; off < bytes.length; off += FILE_CHUNK_BYTES) {
            if (done.aborted) return; // the guest already answered (an error) or we gave up
            await this.conn.send('data', id, bytes.subarray(off, off + FILE_CHUNK_BYTES), done);
          }
          if (!done.aborted) await this.conn.send('end', id, { sha256 }, done);
        },
      },
    );
  }

  list(path: string, opts: RequestOptions = {}): Promise<FileList> {
    return this.conn.call('files.list', { path }, this.options(opts));
  }

  /** Does not follow a final symlink (lstat). */
  stat(path: string, opts: RequestOptions = {}): Promise<FileEntry> {
    return this.conn.call('files.stat', { path }, this.options(opts));
  }

  async remove(path: string, opts: RequestOptions & { recursive?: boolean } = {}): Promise<void> {
    await this.conn.call('files.remove', { path, ...(opts.recursive ? { recursive: true } : {}) }, this.options(opts));
  }

  async mkdir(path: string, opts: RequestOptions & { parents?: boolean } = {}): Promise<void> {
    await this.conn.call('files.mkdir', { path, ...(opts.parents ? { parents: true } : {}) }, this.options(opts));
  }

  /** rename(2) in the guest: same file system only; an existing `to` is replaced. */
  async rename(from: string, to: string, opts: RequestOptions = {}): Promise<void> {
    await this.conn.call('files.rename', { from, to }, this.options(opts));
  }

  private options(opts: RequestOptions): { timeoutMs: number; signal: AbortSignal | undefined } {
    return { timeoutMs: opts.timeoutMs ?? this.defaultTimeoutMs, signal: opts.signal };
  }
}
