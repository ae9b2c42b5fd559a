// POSIX ustar headers (and the pax `size` record for files of 8 GiB and more), encoded and
// decoded strictly. Only what forkd's packs need: no GNU extensions, no base-256 numbers, no
// long names. The reader refuses rather than guesses: a pack may come from anyone.
import { ForkdError } from '../lib/errors.js';

export const BLOCK = 512;
/** Tar readers expect whole records; GNU tar's default record is 20 blocks. */
export const RECORD = 20 * BLOCK;
/** Largest size an 11-digit octal field holds (8 GiB - 1); larger sizes go in a pax record. */
export const USTAR_MAX_SIZE = 8 ** 11 - 1;
export const NAME_MAX_BYTES = 100;

export const TYPE = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  chardev: '3',
  blockdev: '4',
  dir: '5',
  fifo: '6',
  contiguous: '7',
  paxLocal: 'x',
  paxGlobal: 'g',
  gnuLongName: 'L',
  gnuLongLink: 'K',
  gnuSparse: 'S',
} as const;

export interface TarHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** One character; '\0' (old regular file) is reported as '0'. */
  typeflag: string;
  linkname: string;
  devmajor: number;
  devminor: number;
}

export type HeaderInput = Pick<TarHeader, 'name' | 'size'> & Partial<TarHeader>;

// Field offsets and lengths of the ustar header (POSIX.1-2001, pax "ustar Interchange Format").
const F = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

const bad = (msg: string): ForkdError =>
  new ForkdError('corrupt_snapshot', `pack is not a valid forkd tar stream: ${msg}`);

/** One 512-byte ustar header. The size field holds 0 when `size` needs a pax record. */
export function encodeHeader(h: HeaderInput): Buffer {
  const buf = Buffer.alloc(BLOCK);
  putString(buf, F.name, h.name, 'name');
  putOctal(buf, F.mode, h.mode ?? 0o644);
  putOctal(buf, F.uid, h.uid ?? 0);
  putOctal(buf, F.gid, h.gid ?? 0);
  putOctal(buf, F.size, h.size > USTAR_MAX_SIZE ? 0 : h.size);
  putOctal(buf, F.mtime, h.mtime ?? 0);
  buf.write(h.typeflag ?? TYPE.file, F.typeflag[0], 1, 'latin1');
  putString(buf, F.linkname, h.linkname ?? '', 'link name');
  buf.write('ustar\0', F.magic[0], 'latin1');
  buf.write('00', F.version[0], 'latin1');
  putString(buf, F.uname, 'root', 'user name');
  putString(buf, F.gname, 'root', 'group name');
  putOctal(buf, F.devmajor, h.devmajor ?? 0);
  putOctal(buf, F.devminor, h.devminor ?? 0);
  // Checksum: the header's unsigned byte sum with the checksum field read as 8 spaces, written
  // as 6 octal digits, NUL, space.
  buf.fill(0x20, F.chksum[0], F.chksum[0] + F.chksum[1]);
  buf.write(`${checksum(buf).toString(8).padStart(6, '0')}\0 `, F.chksum[0], 'latin1');
  return buf;
}

/** The pax extended header records a header needs (`size` beyond 8 GiB), or undefined. */
export function paxRecordsFor(h: HeaderInput): Buffer | undefined {
  if (h.size <= USTAR_MAX_SIZE) return undefined;
  return paxRecord('size', String(h.size));
}

/** "<len> <key>=<value>\n", where len counts the whole record including its own digits. */
export function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.from(`${len}${body}`, 'utf8');
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** Decode and check one header block (checksum, magic, fields). Throws corrupt_snapshot. */
export function decodeHeader(block: Buffer): TarHeader {
  if (block.length !== BLOCK) throw bad(`header of ${block.length} bytes`);
  const stored = octal(block, F.chksum, 'checksum');
  const copy = Buffer.from(block);
  copy.fill(0x20, F.chksum[0], F.chksum[0] + F.chksum[1]);
  if (checksum(copy) !== stored) throw bad(`header checksum ${stored} does not match the header (${checksum(copy)})`);
  const magic = block.toString('latin1', F.magic[0], F.magic[0] + F.magic[1]);
  const version = block.toString('latin1', F.version[0], F.version[0] + F.version[1]);
  if (magic !== 'ustar\0' || version !== '00')
    throw bad(`header magic ${JSON.stringify(magic + version)} is not POSIX ustar ("ustar\\u000000")`);
  const name = cString(block, F.name, 'name');
  const prefix = cString(block, F.prefix, 'prefix');
  const flag = block.toString('latin1', F.typeflag[0], F.typeflag[0] + 1);
  return {
    name: prefix ? `${prefix}/${name}` : name,
    mode: octal(block, F.mode, 'mode'),
    uid: octal(block, F.uid, 'uid'),
    gid: octal(block, F.gid, 'gid'),
    size: octal(block, F.size, 'size'),
    mtime: octal(block, F.mtime, 'mtime'),
    typeflag: flag === '\0' ? TYPE.file : flag,
    linkname: cString(block, F.linkname, 'link name'),
    devmajor: octal(block, F.devmajor, 'devmajor'),
    devminor: octal(block, F.devminor, 'devminor'),
  };
}

/** Parse a pax extended header's records; only keys forkd understands are accepted. */
export function parsePaxRecords(data: Buffer): { size?: number } {
  const out: { size?: number } = {};
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0 || space - pos > 20) throw bad('malformed pax record (no length)');
    const lenText = data.toString('latin1', pos, space);
    if (!/^[1-9][0-9]*$/.test(lenText)) throw bad(`malformed pax record length ${JSON.stringify(lenText)}`);
    const len = Number(lenText);
    if (pos + len > data.length || data[pos + len - 1] !== 0x0a) throw bad('malformed pax record (bad length)');
    const record = data.toString('utf8', space + 1, pos + len - 1);
    const eq = record.indexOf('=');
    if (eq <= 0) throw bad('malformed pax record (no key)');
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'size') {
      if (!/^[0-9]{1,16}$/.test(value) || !Number.isSafeInteger(Number(value)))
        throw bad(`pax size ${JSON.stringify(value.slice(0, 40))} is not a whole number`);
      out.size = Number(value);
    } else if (key !== 'mtime' && key !== 'atime' && key !== 'ctime') {
      throw bad(`pax record ${JSON.stringify(key.slice(0, 40))} is not supported (only size and times are)`);
    }
    pos += len;
  }
  return out;
}

function checksum(block: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i]!;
  return sum;
}

function putString(buf: Buffer, [off, len]: readonly [number, number], value: string, what: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > len || (what === 'name' && bytes.length === len))
    throw new ForkdError(
      'invalid_argument',
      `tar ${what} ${JSON.stringify(value.slice(0, 120))} is longer than ${len - 1} bytes`,
    );
  if (bytes.includes(0)) throw new ForkdError('invalid_argument', `tar ${what} contains a NUL byte`);
  bytes.copy(buf, off);
}

function putOctal(buf: Buffer, [off, len]: readonly [number, number], value: number): void {
  const digits = len - 1;
  if (!Number.isSafeInteger(value) || value < 0 || value > 8 ** digits - 1)
    throw new ForkdError('invalid_argument', `tar field value ${value} does not fit ${digits} octal digits`);
  buf.write(`${value.toString(8).padStart(digits, '0')}\0`, off, len, 'latin1');
}

/** Octal digits, optionally space-padded, ended by NUL or space; empty means 0. */
function octal(block: Buffer, [off, len]: readonly [number, number], what: string): number {
  if ((block[off]! & 0x80) !== 0) throw bad(`${what} field uses base-256, which forkd packs never need`);
  const text = block.toString('latin1', off, off + len);
  const m = /^ *([0-7]*)[ \0]*$/.exec(text);
  if (!m) throw bad(`${what} field ${JSON.stringify(text)} is not octal`);
  return m[1] ? parseInt(m[1], 8) : 0;
}

/** A NUL-terminated (or field-filling) printable ASCII string. */
function cString(block: Buffer, [off, len]: readonly [number, number], what: string): string {
  const end = block.indexOf(0, off);
  const stop = end < 0 || end > off + len ? off + len : end;
  for (let i = stop; i < off + len; i++)
    if (block[i] !== 0) throw bad(`${what} field has bytes after its terminating NUL`);
  const text = block.toString('latin1', off, stop);
  if (/[^\x20-\x7e]/.test(text)) throw bad(`${what} ${JSON.stringify(text)} contains non-ASCII or control characters`);
  return text;
}
