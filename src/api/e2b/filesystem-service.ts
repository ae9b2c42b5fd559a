// The in-sandbox `filesystem.Filesystem` service (envd's filesystem.proto, JSON codec) over the
// agent's file operations. Relative paths are taken from `/` (the agent's working directory;
// envd uses the user's home). Watching is not offered: WatchDir and the watcher calls answer
// `unimplemented`, which the SDK raises as an error naming the call.
import { posix } from 'node:path';
import type { LiveSandbox } from '../../core/controller/live.js';
import type { FileEntry } from '../../core/api-surface.js';
import { ForkdError, isForkdError } from '../../lib/errors.js';
import { RpcError, type RpcCall } from './connect-protocol.js';
import { optInt, optString } from './input.js';

/** Entries a recursive ListDir returns at most (each directory level is one agent call). */
const MAX_LISTED = 20_000;
const MAX_DEPTH = 64;
const FILE_TYPE = { file: 'FILE_TYPE_FILE', dir: 'FILE_TYPE_DIRECTORY', symlink: 'FILE_TYPE_SYMLINK' } as const;

type Obj = Record<string, unknown>;

/** An absolute, normalised path ("." and ".." resolved lexically; the agent checks the rest). */
export function sandboxPath(raw: string | undefined, field = 'path'): string {
  if (raw === undefined || raw === '') throw new RpcError('invalid_argument', `${field} is required`);
  if (raw.includes('\0')) throw new RpcError('invalid_argument', `${field} contains a NUL byte`);
  return posix.resolve('/', raw);
}

export function entryJson(path: string, e: FileEntry): Obj {
  return {
    name: posix.basename(path) || '/',
    type: e.type === 'other' ? 'FILE_TYPE_UNSPECIFIED' : FILE_TYPE[e.type],
    path,
    size: String(e.size),
    mode: e.mode & 0o777,
    permissions: permissions(e),
    owner: '',
    group: '',
    modifiedTime: new Date(e.mtimeMs).toISOString(),
  };
}

/** Like Go's fs.FileMode.String(): "-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx". */
function permissions(e: FileEntry): string {
  const kind = e.type === 'dir' ? 'd' : e.type === 'symlink' ? 'L' : e.type === 'file' ? '-' : '?';
  let bits = '';
  for (let i = 8; i >= 0; i--) bits += e.mode & (1 << i) ? 'rwx'[(8 - i) % 3] : '-';
  return kind + bits;
}

export const FILESYSTEM_UNARY: Record<string, (ctx: { live: LiveSandbox }, call: RpcCall) => Promise<unknown>> = {
  Stat: async ({ live }, { message, signal }) => {
    const path = sandboxPath(optString(message, 'path'));
    return { entry: entryJson(path, await live.agent.files.stat(path, { signal })) };
  },
  ListDir: async ({ live }, { message, signal }) => {
    const root = sandboxPath(optString(message, 'path'));
    const depth = optInt(message, 'depth', 0, MAX_DEPTH) || 1;
    const st = await live.agent.files.stat(root, { signal });
    if (st.type !== 'dir') throw new RpcError('invalid_argument', `${root} is not a directory`);
    const entries: Obj[] = [];
    let level = [root];
    for (let d = 1; d <= depth && level.length > 0; d++) {
      const next: string[] = [];
      for (const dir of level) {
        const r = await live.agent.files.list(dir, { signal });
        for (const e of r.entries) {
          const path = posix.join(dir, e.name);
          entries.push(entryJson(path, e));
          if (e.type === 'dir') next.push(path);
          if (entries.length > MAX_LISTED)
            throw new ForkdError('payload_too_large', `over ${MAX_LISTED} entries under ${root}; list less deep`);
        }
      }
      level = next;
    }
    return { entries };
  },
  MakeDir: async ({ live }, { message, signal }) => {
    const path = sandboxPath(optString(message, 'path'));
    const existing = await live.agent.files.stat(path, { signal }).catch((err: unknown) => {
      if (isForkdError(err, 'not_found')) return undefined;
      throw err;
    });
    if (existing) throw new ForkdError('already_exists', `${path} already exists`);
    await live.agent.files.mkdir(path, { signal, parents: true });
    return { entry: entryJson(path, await live.agent.files.stat(path, { signal })) };
  },
  Move: async ({ live }, { message, signal }) => {
    const from = sandboxPath(optString(message, 'source'), 'source');
    const to = sandboxPath(optString(message, 'destination'), 'destination');
    await live.agent.files.stat(from, { signal }); // not_found names the source
    await live.agent.files.rename(from, to, { signal });
    return { entry: entryJson(to, await live.agent.files.stat(to, { signal })) };
  },
  Remove: async ({ live }, { message, signal }) => {
    const path = sandboxPath(optString(message, 'path'));
    await live.agent.files.remove(path, { signal, recursive: true });
    return {};
  },
};
