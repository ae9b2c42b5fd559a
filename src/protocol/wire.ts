// The binary wire format of protocol versions 2 and 3 (docs/PROTOCOL.md): COBS-framed bodies of
// `kind:u8 id:u64le payload`, payloads being raw bytes or typed records. Shared by the host
// client, the eval workers and the tests; the C agent has its own copy of the same rules.
// Decoding treats its input as hostile: every length is checked against what remains, depth
// and counts are bounded, and a violation throws a ProtocolError (never reads out of bounds).
import { ProtocolError } from './check.js';

export const FRAME_KIND = {
  request: 0x01,
  data: 0x02,
  end: 0x03,
  stdout: 0x10,
  stderr: 0x11,
  filedata: 0x12,
  /** Output of a process on a pseudo-terminal (stdout and stderr are one stream there). */
  pty: 0x13,
  /** Record `{pid}`: an `announce` exec's process was spawned (before any of its output). */
  started: 0x14,
  ok: 0x20,
  error: 0x21,
} as const;
export type FrameKindName = keyof typeof FRAME_KIND;

const KIND_NAMES = new Map<number, FrameKindName>(
  Object.entries(FRAME_KIND).map(([name, value]) => [value, name as FrameKindName]),
);

const T_NULL = 0x00;
const T_FALSE = 0x01;
const T_TRUE = 0x02;
const T_INT = 0x03;
const T_FLOAT = 0x04;
const T_STRING = 0x05;
const T_BYTES = 0x06;
const T_LIST = 0x07;
const T_RECORD = 0x08;

/** Request record, a list in it, a record in the list, its values. */
export const MAX_VALUE_DEPTH = 4;
const HEADER_BYTES = 9;

export type WireValue = null | boolean | number | string | Buffer | WireValue[] | WireRecord;
export interface WireRecord {
  [key: string]: WireValue | undefined;
}

export interface DecodedFrame {
  kind: FrameKindName;
  id: number;
  /** Raw payload for data kinds (stdout, stderr, filedata, pty, data); a record otherwise. */
  payload: Buffer | WireRecord;
}

const RAW_KINDS: ReadonlySet<FrameKindName> = new Set(['data', 'stdout', 'stderr', 'filedata', 'pty']);

// ---------------------------------------------------------------- COBS

/** COBS-encodes `body` (no 0x00 in the output) and appends the 0x00 delimiter. */
export function cobsEncode(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(body.length + Math.ceil(body.length / 254) + 2);
  let codeAt = 0;
  let w = 1;
  let code = 1;
  for (let r = 0; r < body.length; r++) {
    const byte = body[r] as number;
    if (byte === 0) {
      out[codeAt] = code;
      codeAt = w++;
      code = 1;
      continue;
    }
    out[w++] = byte;
    if (++code === 0xff) {
      out[codeAt] = code;
      codeAt = w++;
      code = 1;
    }
  }
  out[codeAt] = code;
  out[w++] = 0;
  return out.subarray(0, w);
}

/** Decodes one COBS frame (delimiter excluded). Throws on a 0x00 inside or a truncated block. */
export function cobsDecode(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(frame.length);
  let w = 0;
  let r = 0;
  while (r < frame.length) {
    const code = frame[r++] as number;
    if (code === 0) throw new ProtocolError('frame: 0x00 inside a COBS frame');
    const end = r + code - 1;
    if (end > frame.length) throw new ProtocolError('frame: truncated COBS block');
    for (; r < end; r++) {
      const byte = frame[r] as number;
      if (byte === 0) throw new ProtocolError('frame: 0x00 inside a COBS frame');
      out[w++] = byte;
    }
    if (code !== 0xff && r < frame.length) out[w++] = 0;
  }
  return out.subarray(0, w);
}

// ---------------------------------------------------------------- encoding

class Writer {
  private buf = Buffer.allocUnsafe(256);
  len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }
  u16(v: number): void {
    this.room(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
  }
  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32LE(v, this.len);
    this.len += 4;
  }
  u64(v: number): void {
    this.room(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.len);
    this.len += 8;
  }
  i64(v: number): void {
    this.room(8);
    this.buf.writeBigInt64LE(BigInt(v), this.len);
    this.len += 8;
  }
  f64(v: number): void {
    this.room(8);
    this.buf.writeDoubleLE(v, this.len);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  string(s: string): void {
    const n = Buffer.byteLength(s);
    this.room(n);
    this.buf.write(s, this.len, 'utf8');
    this.len += n;
  }
  result(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

function writeValue(w: Writer, value: unknown, depth: number, path: string): void {
  if (value === null) return w.u8(T_NULL);
  if (value === false) return w.u8(T_FALSE);
  if (value === true) return w.u8(T_TRUE);
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) {
      w.u8(T_INT);
      return w.i64(value);
    }
    if (!Number.isFinite(value)) throw new ProtocolError(`${path}: ${value} is not a finite number`);
    w.u8(T_FLOAT);
    return w.f64(value);
  }
  if (typeof value === 'string') {
    w.u8(T_STRING);
    w.u32(Buffer.byteLength(value));
    return w.string(value);
  }
  if (value instanceof Uint8Array) {
    w.u8(T_BYTES);
    w.u32(value.length);
    return w.bytes(value);
  }
  if (depth >= MAX_VALUE_DEPTH) throw new ProtocolError(`${path}: nested deeper than ${MAX_VALUE_DEPTH}`);
  if (Array.isArray(value)) {
    w.u8(T_LIST);
    w.u32(value.length);
    value.forEach((item, i) => writeValue(w, item, depth + 1, `${path}[${i}]`));
    return;
  }
  if (typeof value === 'object') {
    w.u8(T_RECORD);
    return writeRecord(w, value as Record<string, unknown>, depth + 1, path);
  }
  throw new ProtocolError(`${path}: ${typeof value} cannot be encoded`);
}

function writeRecord(w: Writer, rec: Record<string, unknown>, depth: number, path: string): void {
  const entries = Object.entries(rec).filter(([, v]) => v !== undefined);
  if (entries.length > 0xffff) throw new ProtocolError(`${path}: more than 65535 fields`);
  w.u16(entries.length);
  for (const [key, v] of entries) {
    const keyBytes = Buffer.byteLength(key);
    if (keyBytes < 1 || keyBytes > 255) throw new ProtocolError(`${path}: key of ${keyBytes} bytes (1..255)`);
    w.u8(keyBytes);
    w.string(key);
    writeValue(w, v, depth, `${path}.${key}`);
  }
}

/** Encodes a whole frame, delimiter included. `payload`: raw bytes or a record (`undefined` fields skipped). */
export function encodeWireFrame(kind: FrameKindName, id: number, payload: Uint8Array | object): Buffer {
  const w = new Writer();
  w.u8(FRAME_KIND[kind]);
  w.u64(id);
  if (payload instanceof Uint8Array) w.bytes(payload);
  else writeRecord(w, payload as Record<string, unknown>, 1, kind);
  return cobsEncode(w.result());
}

// ---------------------------------------------------------------- decoding

class Reader {
  at = 0;
  constructor(private readonly buf: Buffer) {}

  need(n: number, what: string): void {
    if (this.buf.length - this.at < n) {
      throw new ProtocolError(`${what}: needs ${n} bytes, ${this.buf.length - this.at} left in the frame`);
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.at++] as number;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }
  slice(n: number, what: string): Buffer {
    this.need(n, what);
    const s = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return s;
  }
  rest(): Buffer {
    const s = this.buf.subarray(this.at);
    this.at = this.buf.length;
    return s;
  }
  get done(): boolean {
    return this.at === this.buf.length;
  }
}

function readValue(r: Reader, depth: number, path: string): WireValue {
  const tag = r.u8(path);
  switch (tag) {
    case T_NULL:
      return null;
    case T_FALSE:
      return false;
    case T_TRUE:
      return true;
    case T_INT: {
      const v = r.slice(8, path).readBigInt64LE(0);
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new ProtocolError(`${path}: integer ${v} is beyond 2^53`);
      }
      return Number(v);
    }
    case T_FLOAT: {
      const v = r.slice(8, path).readDoubleLE(0);
      if (!Number.isFinite(v)) throw new ProtocolError(`${path}: float is not finite`);
      return v;
    }
    case T_STRING:
      return r.slice(r.u32(path), path).toString('utf8');
    case T_BYTES:
      return Buffer.from(r.slice(r.u32(path), path));
    case T_LIST: {
      if (depth >= MAX_VALUE_DEPTH) throw new ProtocolError(`${path}: nested deeper than ${MAX_VALUE_DEPTH}`);
      const count = r.u32(path);
      // Every value takes at least one byte: a count beyond what is left is a lie, refused before allocating.
      r.need(count, `${path} (${count} items)`);
      const out: WireValue[] = [];
      for (let i = 0; i < count; i++) out.push(readValue(r, depth + 1, `${path}[${i}]`));
      return out;
    }
    case T_RECORD:
      if (depth >= MAX_VALUE_DEPTH) throw new ProtocolError(`${path}: nested deeper than ${MAX_VALUE_DEPTH}`);
      return readRecord(r, depth + 1, path);
    default:
      throw new ProtocolError(`${path}: unknown value type 0x${tag.toString(16)}`);
  }
}

function readRecord(r: Reader, depth: number, path: string): WireRecord {
  const count = r.u16(path);
  r.need(count * 3, `${path} (${count} fields)`); // key length, key byte, value tag
  const out: WireRecord = Object.create(null) as WireRecord;
  for (let i = 0; i < count; i++) {
    const keyLen = r.u8(path);
    if (keyLen === 0) throw new ProtocolError(`${path}: empty key`);
    const key = r.slice(keyLen, path).toString('utf8');
    if (Object.hasOwn(out, key)) throw new ProtocolError(`${path}: duplicate key ${JSON.stringify(key)}`);
    out[key] = readValue(r, depth, `${path}.${key}`);
  }
  return out;
}

/** The kind and id of a decoded body, if it has a header (to attribute a bad frame). */
export function peekHeader(body: Buffer): { kind: number; id: number } | undefined {
  if (body.length < HEADER_BYTES) return undefined;
  const id = body.readBigUInt64LE(1);
  return { kind: body[0] as number, id: id > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(id) };
}

/** Decodes one frame (COBS bytes, delimiter excluded). Throws a ProtocolError naming what is wrong. */
export function decodeWireFrame(encoded: Uint8Array): DecodedFrame {
  const body = cobsDecode(encoded);
  const header = peekHeader(body);
  if (!header) throw new ProtocolError(`frame: ${body.length} bytes is shorter than its ${HEADER_BYTES}-byte header`);
  const kind = KIND_NAMES.get(header.kind);
  if (!kind) throw new ProtocolError(`frame: unknown kind 0x${header.kind.toString(16)}`);
  if (header.id < 0) throw new ProtocolError('frame.id: beyond 2^53');
  const r = new Reader(body);
  r.at = HEADER_BYTES;
  if (RAW_KINDS.has(kind)) return { kind, id: header.id, payload: r.rest() };
  const payload = readRecord(r, 1, kind);
  if (!r.done) throw new ProtocolError(`frame: ${body.length - r.at} bytes after the record`);
  return { kind, id: header.id, payload };
}

/** The id of a frame too large to decode, from its first (COBS-encoded) bytes, if they hold a header. */
export function sniffFrameId(head: Uint8Array): number | undefined {
  const out: number[] = [];
  let r = 0;
  while (r < head.length && out.length < HEADER_BYTES) {
    const code = head[r++] as number;
    if (code === 0) return undefined;
    for (let i = 1; i < code && r < head.length; i++) out.push(head[r++] as number);
    if (code !== 0xff && out.length < HEADER_BYTES && r < head.length) out.push(0);
  }
  const header = peekHeader(Buffer.from(out.slice(0, HEADER_BYTES)));
  return header && header.id > 0 ? header.id : undefined;
}
