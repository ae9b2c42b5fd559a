// `sandbox.files`, in the shape of E2B's Filesystem: read (text by default), write (parents
// made), list, getInfo, exists, makeDir, rename, remove. Each is one REST call (two for a
// write into a missing directory) on /v1/sandboxes/{id}/files[...].
import { ForkdApiError } from './errors.js';
import type { CallOptions, Transport } from './http.js';
import { entryInfoOf, type EntryInfo, type WriteInfo } from './shapes.js';
import type { FileInfo, FileList, MadeDir, WriteFileResult } from './types.js';

export interface FileRequestOptions {
  signal?: AbortSignal;
  /** Bound of the call (ms). */
  requestTimeoutMs?: number;
  /** @deprecated the old name of `requestTimeoutMs`. */
  timeoutMs?: number;
}

/** `files.list`: the entries (an array, as E2B's), and whether the agent stopped at its 4096-entry cap. */
export type EntryList = EntryInfo[] & { truncated: boolean };

const call = (o: FileRequestOptions): CallOptions => ({
  signal: o.signal,
  timeoutMs: o.requestTimeoutMs ?? o.timeoutMs,
});
const isNotFound = (err: unknown): boolean => err instanceof ForkdApiError && err.code === 'not_found';
const parentOf = (path: string): string => path.replace(/\/+[^/]*\/*$/, '') || '/';
const join = (dir: string, name: string): string => `${dir.replace(/\/+$/, '')}/${name}`;

export class Filesystem {
  readonly #path: string;
  constructor(
    private readonly t: Transport,
    sandboxId: string,
  ) {
    this.#path = `/v1/sandboxes/${encodeURIComponent(sandboxId)}/files`;
  }

  /** The file's content: text (UTF-8) by default, `format: 'bytes'` for a Buffer. */
  read(path: string, opts?: FileRequestOptions & { format?: 'text' }): Promise<string>;
  read(path: string, opts: FileRequestOptions & { format: 'bytes' }): Promise<Buffer>;
  async read(path: string, opts: FileRequestOptions & { format?: 'text' | 'bytes' } = {}): Promise<string | Buffer> {
    const bytes = await this.t.buffer({ method: 'GET', path: this.#path, query: { path }, ...call(opts) });
    return opts.format === 'bytes' ? bytes : bytes.toString('utf8');
  }

  /** @deprecated `read(path)` is text now. */
  readText(path: string, opts: FileRequestOptions = {}): Promise<string> {
    return this.read(path, opts);
  }

  /** Atomic in the guest (temp file, sha256 checked, renamed); a missing parent directory is made first. */
  async write(
    path: string,
    data: string | Uint8Array,
    opts: FileRequestOptions & { mode?: number } = {},
  ): Promise<WriteInfo> {
    const put = (): Promise<WriteFileResult> =>
      this.t.json({
        method: 'PUT',
        path: this.#path,
        query: { path, mode: opts.mode === undefined ? undefined : opts.mode.toString(8) },
        body: typeof data === 'string' ? Buffer.from(data) : data,
        ...call(opts),
      });
    let r: WriteFileResult;
    try {
      r = await put();
    } catch (err) {
      if (!isNotFound(err) || parentOf(path) === '/') throw err;
      await this.makeDir(parentOf(path), opts);
      r = await put();
    }
    return {
      name: path.split('/').filter(Boolean).pop() ?? '/',
      type: 'file',
      path: r.path,
      size: r.size,
      sha256: r.sha256,
    };
  }

  async list(path: string, opts: FileRequestOptions = {}): Promise<EntryList> {
    const r = await this.t.json<FileList>({
      method: 'GET',
      path: `${this.#path}/list`,
      query: { path },
      ...call(opts),
    });
    return Object.assign(
      r.entries.map((e) => entryInfoOf(e, join(path, e.name))),
      { truncated: r.truncated },
    );
  }

  /** lstat: a final symlink is described, not followed. ForkdApiError not_found when nothing is there. */
  async getInfo(path: string, opts: FileRequestOptions = {}): Promise<EntryInfo> {
    const r = await this.t.json<FileInfo>({
      method: 'GET',
      path: `${this.#path}/stat`,
      query: { path },
      ...call(opts),
    });
    return entryInfoOf(r, r.path);
  }

  async exists(path: string, opts: FileRequestOptions = {}): Promise<boolean> {
    try {
      await this.getInfo(path, opts);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Makes the directory and its missing parents; false when a directory was already there. */
  async makeDir(path: string, opts: FileRequestOptions = {}): Promise<boolean> {
    const r = await this.t.json<MadeDir>({
      method: 'POST',
      path: `${this.#path}/mkdir`,
      json: { path, parents: true },
      ...call(opts),
    });
    return r.created;
  }

  /** rename(2): an existing `newPath` is replaced; answers the entry now at `newPath`. */
  async rename(oldPath: string, newPath: string, opts: FileRequestOptions = {}): Promise<EntryInfo> {
    const r = await this.t.json<FileInfo>({
      method: 'POST',
      path: `${this.#path}/rename`,
      json: { from: oldPath, to: newPath },
      ...call(opts),
    });
    return entryInfoOf(r, r.path);
  }

  /** Removes a file, or a directory with everything in it (E2B's remove); `recursive: false` refuses a non-empty one. */
  async remove(path: string, opts: FileRequestOptions & { recursive?: boolean } = {}): Promise<void> {
    await this.t.buffer({
      method: 'DELETE',
      path: this.#path,
      query: { path, recursive: opts.recursive === false ? undefined : 'true' },
      ...call(opts),
    });
  }
}
