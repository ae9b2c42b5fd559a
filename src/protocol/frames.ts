// Frame envelopes of protocol 3 (docs/PROTOCOL.md): wire.ts decodes the bytes, this file
// checks what a decoded frame means. Every frame carries the request `id`.
//
// host -> guest   REQUEST {op:"exec", argv:["ls"]}     a request (params beside op)
//                 DATA <bytes>                          upload chunk of a files.write
//                 END {sha256}                          upload complete
// guest -> host   STDOUT | STDERR | FILEDATA <bytes>    output / file chunk of a request
//                 PTY <bytes>                           output of a process on a terminal
//                 STARTED {pid}                         an `announce` exec's process was spawned
//                 OK {...result}                        final reply
//                 ERROR {code, message}                 final reply; id 0 = no request
import { int, literal, ProtocolError, str } from './check.js';
import { FILE_CHUNK_BYTES, MAX_ERROR_MESSAGE_CHARS } from './limits.js';
import { encodeWireFrame, type DecodedFrame, type WireRecord } from './wire.js';

export type StreamKind = 'stdout' | 'stderr' | 'data' | 'pty';

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
  | { id: number; stream: StreamKind; data: Buffer }
  | { id: number; started: { pid: number } }
  | { id: number; ok: true; result: WireRecord }
  | { id: number | null; ok: false; error: WireError };

export type HostFrame =
  | { kind: 'request'; id: number; op: string; params: WireRecord }
  | { kind: 'data'; id: number; data: Buffer }
  | { kind: 'end'; id: number; sha256: string };

const errorCode = literal<GuestErrorCode>(...GUEST_ERROR_CODES);
const message = str({ max: MAX_ERROR_MESSAGE_CHARS });
const sha256 = str({ pattern: /^[0-9a-f]{64}$/ });
const opName = str({ min: 1, max: 64 });
const pid = int({ min: 1, max: 2 ** 31 - 1 });

function chunk(data: Buffer, path: string): Buffer {
  if (data.length > FILE_CHUNK_BYTES) {
    throw new ProtocolError(`${path}: ${data.length} bytes is over the ${FILE_CHUNK_BYTES}-byte chunk limit`);
  }
  return data;
}

function requireId(id: number, path: string): number {
  if (id === 0) throw new ProtocolError(`${path}: id 0 names no request`);
  return id;
}

/** Checks a decoded frame from the guest. Throws ProtocolError; never trusts a field unchecked. */
export function parseGuestFrame(frame: DecodedFrame): GuestFrame {
  const { kind, id, payload } = frame;
  switch (kind) {
    case 'stdout':
    case 'stderr':
    case 'pty':
    case 'filedata':
      return {
        id: requireId(id, 'frame.id'),
        stream: kind === 'filedata' ? 'data' : kind,
        data: chunk(payload as Buffer, `frame.${kind}`),
      };
    case 'ok':
      return { id: requireId(id, 'frame.id'), ok: true, result: payload as WireRecord };
    case 'started':
      return { id: requireId(id, 'frame.id'), started: { pid: pid((payload as WireRecord).pid, 'frame.started.pid') } };
    case 'error': {
      const err = payload as WireRecord;
      return {
        id: id === 0 ? null : id,
        ok: false,
        error: { code: errorCode(err.code, 'frame.error.code'), message: message(err.message, 'frame.error.message') },
      };
    }
    default:
      throw new ProtocolError(`frame: kind ${kind} is not one the guest sends`);
  }
}

/** Checks a decoded frame from the host (guest side: the eval workers). Params are checked per op later. */
export function parseHostFrame(frame: DecodedFrame): HostFrame {
  const { kind, id, payload } = frame;
  switch (kind) {
    case 'request': {
      const { op, ...params } = payload as WireRecord;
      return { kind: 'request', id, op: opName(op, 'frame.op'), params };
    }
    case 'data':
      return { kind: 'data', id: requireId(id, 'frame.id'), data: chunk(payload as Buffer, 'frame.data') };
    case 'end':
      return {
        kind: 'end',
        id: requireId(id, 'frame.id'),
        sha256: sha256((payload as WireRecord).sha256, 'frame.sha256'),
      };
    default:
      throw new ProtocolError(`frame: kind ${kind} is not one the host sends`);
  }
}

export function encodeRequest(id: number, op: string, params: object): Buffer {
  return encodeWireFrame('request', id, { op, ...params });
}
