// Frame envelopes. One JSON object per line, every one carrying the request `id`.
//
// host -> guest   {"id":7,"op":"exec","argv":["ls"]}          a request (params beside op)
//                 {"id":9,"data":"<base64>"}                   upload chunk of files.write 9
//                 {"id":9,"end":true,"sha256":"<hex>"}         upload complete
// guest -> host   {"id":7,"stream":"stdout","data":"<base64>"} output / file chunk of request 7
//                 {"id":7,"ok":true,"result":{...}}            final reply
//                 {"id":7,"ok":false,"error":{"code":"timeout","message":"..."}}
//                 {"id":null,"ok":false,"error":{...}}         a line the guest could not parse
import { base64, int, isPlainObject, literal, ProtocolError, str } from './check.js';
import { FILE_CHUNK_BYTES, MAX_ERROR_MESSAGE_CHARS } from './limits.js';

export type StreamKind = 'stdout' | 'stderr' | 'data';

/** Error codes the guest may send. The host maps them onto its own codes and trusts nothing else. */
export const GUEST_ERROR_CODES = [
  'bad_request',
  'unknown_op',
  'busy',
  'timeout',
  'cancelled',
  'not_found',
  'exists',
  'permission_denied',
  'too_large',
  'unsupported',
  'exec_failed',
  'io_error',
  'internal',
] as const;
export type GuestErrorCode = (typeof GUEST_ERROR_CODES)[number];

export interface WireError {
  code: GuestErrorCode;
  message: string;
}

export type GuestFrame =
  | { id: number; stream: StreamKind; data: string }
  | { id: number; ok: true; result: unknown }
  | { id: number | null; ok: false; error: WireError };

export type HostFrame =
  | { kind: 'request'; id: number; op: string; params: Record<string, unknown> }
  | { kind: 'data'; id: number; data: string }
  | { kind: 'end'; id: number; sha256: string };

const id = int({ min: 0 });
const streamKind = literal<StreamKind>('stdout', 'stderr', 'data');
const chunk = base64({ maxBytes: FILE_CHUNK_BYTES });
const errorCode = literal<GuestErrorCode>(...GUEST_ERROR_CODES);
const message = str({ max: MAX_ERROR_MESSAGE_CHARS });
const sha256 = str({ pattern: /^[0-9a-f]{64}$/ });

/** Validates a parsed line from the guest. Throws ProtocolError; never trusts a field unchecked. */
export function parseGuestFrame(value: unknown): GuestFrame {
  if (!isPlainObject(value)) throw new ProtocolError('frame: expected an object');
  if ('stream' in value) {
    return {
      id: id(value.id, 'frame.id'),
      stream: streamKind(value.stream, 'frame.stream'),
      data: chunk(value.data, 'frame.data'),
    };
  }
  if (value.ok === true) {
    if (!Object.hasOwn(value, 'result')) throw new ProtocolError('frame.result: missing');
    return { id: id(value.id, 'frame.id'), ok: true, result: value.result };
  }
  if (value.ok === false) {
    const err = value.error;
    if (!isPlainObject(err)) throw new ProtocolError('frame.error: expected an object');
    return {
      id: value.id === null ? null : id(value.id, 'frame.id'),
      ok: false,
      error: { code: errorCode(err.code, 'frame.error.code'), message: message(err.message, 'frame.error.message') },
    };
  }
  throw new ProtocolError('frame: expected `stream` or `ok`');
}

/** Validates a parsed line from the host (guest side). Params are checked per op later. */
export function parseHostFrame(value: unknown): HostFrame {
  if (!isPlainObject(value)) throw new ProtocolError('frame: expected an object');
  const frameId = id(value.id, 'frame.id');
  if ('op' in value) {
    const { id: _id, op, ...params } = value;
    return { kind: 'request', id: frameId, op: str({ min: 1, max: 64 })(op, 'frame.op'), params };
  }
  if ('data' in value) return { kind: 'data', id: frameId, data: chunk(value.data, 'frame.data') };
  if (value.end === true) return { kind: 'end', id: frameId, sha256: sha256(value.sha256, 'frame.sha256') };
  throw new ProtocolError('frame: expected `op`, `data` or `end`');
}

/** The id of a frame too large to parse, read from its first bytes (`{"id":123,`), if there. */
export function sniffFrameId(head: Buffer): number | undefined {
  const match = /^\s*\{"id":(\d{1,15})[,}]/.exec(head.toString('latin1'));
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

export function encodeFrame(frame: object): string {
  return `${JSON.stringify(frame)}\n`;
}
