// A deterministic `newc` cpio writer (the initramfs format). Deterministic so the same inputs
// give the same bytes and the same image id: mtime 0, uid/gid 0, inodes numbered in order.
import { createGzip } from 'node:zlib';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; mode?: number; source: string | Buffer }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; mode?: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): Buffer {
  return Buffer.alloc((4 - (n % 4)) % 4);
}

export function cpioHeader(fields: {
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  rdevMajor?: number;
  rdevMinor?: number;
  name: string;
}): Buffer {
  const name = Buffer.from(`${fields.name}\0`, 'utf8');
  const header =
    '070701' +
    [
      fields.ino,
      fields.mode,
      0,
      0,
      fields.nlink,
      0,
      fields.size,
      0,
      0,
      fields.rdevMajor ?? 0,
      fields.rdevMinor ?? 0,
      name.length,
      0,
    ]
      .map(hex8)
      .join('');
  const head = Buffer.concat([Buffer.from(header, 'ascii'), name]);
  return Buffer.concat([head, pad4(head.length)]);
}

async function* entryChunks(entries: readonly CpioEntry[]): AsyncGenerator<Buffer> {
  let ino = 1;
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    if (e.type === 'dir') {
      yield cpioHeader({ ino: ino++, mode: S_IFDIR | (e.mode ?? 0o755), nlink: 2, size: 0, name });
    } else if (e.type === 'symlink') {
      const target = Buffer.from(e.target, 'utf8');
      yield cpioHeader({ ino: ino++, mode: S_IFLNK | 0o777, nlink: 1, size: target.length, name });
      yield Buffer.concat([target, pad4(target.length)]);
    } else if (e.type === 'chardev') {
      yield cpioHeader({
        ino: ino++,
        mode: S_IFCHR | (e.mode ?? 0o600),
        nlink: 1,
        size: 0,
        rdevMajor: e.major,
        rdevMinor: e.minor,
        name,
      });
    } else {
      const data = typeof e.source === 'string' ? await readFile(e.source) : e.source;
      yield cpioHeader({ ino: ino++, mode: S_IFREG | (e.mode ?? 0o644), nlink: 1, size: data.length, name });
      yield data;
      yield pad4(data.length);
    }
  }
  yield cpioHeader({ ino: 0, mode: 0, nlink: 1, size: 0, name: 'TRAILER!!!' });
}

/** Write entries as a gzip-compressed newc archive. Parent dirs must be listed before children. */
export async function writeCpioGz(entries: readonly CpioEntry[], outPath: string, level = 6): Promise<void> {
  await pipeline(
    Readable.from(entryChunks(entries)),
    createGzip({ level }),
    createWriteStream(outPath, { mode: 0o644 }),
  );
}
