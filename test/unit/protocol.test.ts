import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  arrayOf,
  base64,
  cobsEncode,
  decodeWireFrame,
  encodeWireFrame,
  FILE_CHUNK_BYTES,
  int,
  LineSplitter,
  MAX_FRAME_BYTES,
  object,
  optional,
  OPS,
  parseGuestFrame,
  parseHostFrame,
  ProtocolError,
  record,
  sniffFrameId,
  str,
  type OversizedLine,
} from '../../src/protocol/index.js';

void describe('validators', () => {
  const shape = object({ name: str({ max: 5 }), n: optional(int({ min: 0 })), tags: optional(arrayOf(str(), 2)) });

  void it('keeps only known fields and names the bad path', () => {
    assert.deepEqual(shape({ name: 'ab', n: 3, extra: 'x' }, 'p'), { name: 'ab', n: 3 });
    assert.throws(() => shape({ name: 'abcdef' }, 'p'), /p\.name: longer than 5/);
    assert.throws(() => shape({ name: 'a', n: -1 }, 'p'), /p\.n: -1 is below 0/);
    assert.throws(() => shape({ name: 'a', n: 1.5 }, 'p'), /p\.n: expected an integer/);
    assert.throws(() => shape({ name: 'a', tags: ['a', 'b', 'c'] }, 'p'), /more than 2 items/);
    assert.throws(() => shape([], 'p'), ProtocolError);
  });

  void it('does not let __proto__ through', () => {
    const parsed = JSON.parse('{"name":"a","__proto__":{"polluted":true}}') as unknown;
    const out = shape(parsed, 'p') as Record<string, unknown>;
    assert.equal(out.polluted, undefined);
    const rec = record(str(), 4)(JSON.parse('{"__proto__":"x","a":"b"}'), 'r');
    assert.equal(Object.getPrototypeOf(rec), null);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  void it('checks base64 strictly, with decoded size bounds', () => {
    const b = base64({ maxBytes: 4, minBytes: 2 });
    assert.equal(b(Buffer.from('abc').toString('base64'), 'd'), 'YWJj');
    assert.throws(() => b('YWJj!', 'd'), /not padded base64/);
    assert.throws(() => b('YWI', 'd'), /not padded base64/);
    assert.throws(() => b(Buffer.from('abcdef').toString('base64'), 'd'), /6 bytes is over the 4 limit/);
    assert.throws(() => b(Buffer.from('a').toString('base64'), 'd'), /under the 2 minimum/);
  });

  void it('validates op params and results', () => {
    assert.throws(() => OPS['files.read'].params({ path: 'relative' }, 'files.read'), /path: does not match/);
    assert.throws(
      () =>
        OPS.identity.params(
          { sandboxId: 'a', hostname: 'bad_host', entropy: Buffer.alloc(64), wallClockMs: 1 },
          'identity',
        ),
      /hostname/,
    );
    assert.throws(
      () =>
        OPS.identity.params({ sandboxId: 'a', hostname: 'h', entropy: Buffer.alloc(63), wallClockMs: 1 }, 'identity'),
      /under the 64 minimum/,
    );
    assert.deepEqual(OPS.exec.result({ pid: 42 }, 'r'), { pid: 42 });
    const done = { exitCode: 0, signal: null, timedOut: false, truncated: false, durationMs: 3 };
    assert.deepEqual(OPS.exec.result(done, 'r'), done);
    assert.throws(
      () => OPS.exec.result({ exitCode: '0', signal: null, timedOut: false, truncated: false, durationMs: 3 }, 'r'),
      /exitCode/,
    );
    assert.throws(
      () => OPS.ping.result({ uptimeMs: 1, agentVersion: 'x'.repeat(65), sandboxId: null }, 'r'),
      /agentVersion/,
    );
  });
});

void describe('wire codec', () => {
  const roundTrip = (kind: Parameters<typeof encodeWireFrame>[0], id: number, payload: Buffer | object) => {
    const frame = encodeWireFrame(kind, id, payload);
    assert.equal(frame.indexOf(0), frame.length - 1, 'only the delimiter is 0x00');
    return decodeWireFrame(frame.subarray(0, -1));
  };

  void it('round-trips every value type, raw payloads and COBS edge cases', () => {
    const rec = {
      n: null,
      t: true,
      f: false,
      i: -(2 ** 53 - 1),
      x: 1.5,
      s: 'héllo\u0000',
      b: Buffer.from([0, 1, 0, 255]),
      l: ['a', 1, [2]],
      r: { a: { b: 1 } },
    };
    const out = roundTrip('request', 2 ** 53 - 1, rec);
    assert.equal(out.kind, 'request');
    assert.equal(out.id, 2 ** 53 - 1);
    const nullProto = (o: object): object => Object.assign(Object.create(null) as object, o);
    assert.deepEqual({ ...(out.payload as object) }, { ...rec, r: nullProto({ a: nullProto({ b: 1 }) }) });
    for (const size of [0, 1, 253, 254, 255, 508, 70_000]) {
      const raw = Buffer.alloc(size, size % 3 === 0 ? 0 : 7);
      const got = roundTrip('stdout', 5, raw);
      assert.ok((got.payload as Buffer).equals(raw), `raw payload of ${size} bytes`);
    }
  });

  void it('refuses hostile bodies with a ProtocolError, never reading out of bounds', () => {
    const body = (...bytes: number[]) => cobsEncode(Buffer.from(bytes)).subarray(0, -1);
    const header = [0x20, 1, 0, 0, 0, 0, 0, 0, 0];
    assert.throws(() => decodeWireFrame(body(0x20, 1)), /shorter than its 9-byte header/);
    assert.throws(() => decodeWireFrame(body(0x77, ...header.slice(1), 0, 0)), /unknown kind/);
    // A list claiming 4 billion items in a 20-byte frame.
    assert.throws(() => decodeWireFrame(body(...header, 1, 0, 1, 0x6c, 7, 0xff, 0xff, 0xff, 0xff)), /items/);
    // A string longer than the frame.
    assert.throws(() => decodeWireFrame(body(...header, 1, 0, 1, 0x73, 5, 0xff, 0, 0, 0, 0x61)), /left in the frame/);
    assert.throws(() => decodeWireFrame(body(...header, 2, 0, 1, 0x61, 0, 1, 0x61, 0)), /duplicate key/);
    assert.throws(() => decodeWireFrame(body(...header, 1, 0, 1, 0x61, 0x42)), /unknown value type/);
    assert.throws(() => decodeWireFrame(body(...header, 0, 0, 9)), /after the record/);
    const big = Buffer.alloc(8);
    big.writeBigInt64LE(2n ** 60n);
    assert.throws(() => decodeWireFrame(body(...header, 1, 0, 1, 0x61, 3, ...big)), /beyond 2\^53/);
    // Nesting deeper than MAX_VALUE_DEPTH.
    assert.throws(() => encodeWireFrame('ok', 1, { a: [[[[1]]]] }), /nested deeper/);
    assert.throws(() => decodeWireFrame(Buffer.from([3, 1, 0])), /0x00 inside/);
    assert.throws(() => decodeWireFrame(Buffer.from([9, 1, 2])), /truncated COBS block/);
  });

  void it('checks what a decoded frame means', () => {
    const guest = (kind: Parameters<typeof encodeWireFrame>[0], id: number, payload: Buffer | object) =>
      parseGuestFrame(decodeWireFrame(encodeWireFrame(kind, id, payload).subarray(0, -1)));
    assert.deepEqual(guest('stdout', 1, Buffer.from('a')), { id: 1, stream: 'stdout', data: Buffer.from('a') });
    assert.deepEqual(guest('filedata', 1, Buffer.from('a')).id, 1);
    assert.equal((guest('filedata', 1, Buffer.from('a')) as { stream: string }).stream, 'data');
    assert.deepEqual({ ...(guest('ok', 2, { a: 1 }) as { result: object }).result }, { a: 1 });
    assert.deepEqual(guest('error', 0, { code: 'busy', message: 'm' }), {
      id: null,
      ok: false,
      error: { code: 'busy', message: 'm' },
    });
    assert.throws(() => guest('error', 1, { code: 'unauthorized', message: 'm' }), /error\.code/);
    assert.throws(() => guest('ok', 0, {}), /id 0/);
    assert.throws(() => guest('request', 1, { op: 'x' }), /not one the guest sends/);
    assert.throws(() => guest('stdout', 1, Buffer.alloc(FILE_CHUNK_BYTES + 1)), /chunk limit/);
    const host = (kind: Parameters<typeof encodeWireFrame>[0], id: number, payload: Buffer | object) =>
      parseHostFrame(decodeWireFrame(encodeWireFrame(kind, id, payload).subarray(0, -1)));
    const req = host('request', 3, { op: 'exec', argv: ['ls'] });
    assert.deepEqual(
      { ...req, params: { ...(req as { params: object }).params } },
      { kind: 'request', id: 3, op: 'exec', params: { argv: ['ls'] } },
    );
    assert.deepEqual(host('data', 3, Buffer.alloc(0)), { kind: 'data', id: 3, data: Buffer.alloc(0) });
    assert.throws(() => host('end', 3, { sha256: 'nothex' }), /sha256/);
    assert.throws(() => host('ok', 3, {}), /not one the host sends/);
  });

  void it('sniffs the id of a frame too large to decode', () => {
    const frame = encodeWireFrame('ok', 1234, { s: 'x'.repeat(1000) });
    assert.equal(sniffFrameId(frame.subarray(0, 64)), 1234);
    assert.equal(sniffFrameId(Buffer.from('garbage')), undefined);
  });
});

void describe('LineSplitter', () => {
  const collect = (max: number) => {
    const lines: string[] = [];
    const big: OversizedLine[] = [];
    const s = new LineSplitter(
      max,
      (l) => lines.push(l.toString()),
      (b) => big.push(b),
    );
    return { s, lines, big };
  };

  void it('joins frames split across chunks and skips empty ones', () => {
    const { s, lines } = collect(100);
    s.push(Buffer.from('ab'));
    s.push(Buffer.from('c\0\0de'));
    s.push(Buffer.from('f\0gh'));
    assert.deepEqual(lines, ['abc', 'def']);
    assert.equal(s.bufferedBytes, 2);
    s.reset();
    s.push(Buffer.from('i\0'));
    assert.deepEqual(lines, ['abc', 'def', 'i']);
  });

  void it('skips an oversized frame without buffering it, then carries on', () => {
    const { s, lines, big } = collect(10);
    const head = encodeWireFrame('ok', 7, { x: 'y' }).subarray(0, 10);
    s.push(head);
    s.push(Buffer.from('y'.repeat(1000)));
    assert.ok(s.bufferedBytes <= 10);
    s.push(Buffer.from('zz\0ok\0'));
    assert.deepEqual(lines, ['ok']);
    assert.equal(big.length, 1);
    assert.equal(big[0]?.bytes, 10 + 1000 + 2);
    assert.equal(sniffFrameId(big[0]?.head ?? Buffer.alloc(0)), 7);
  });

  void it('accepts a frame of exactly the limit', () => {
    const { s, lines, big } = collect(MAX_FRAME_BYTES);
    s.push(Buffer.alloc(MAX_FRAME_BYTES, 97));
    s.push(Buffer.alloc(1));
    assert.equal(lines[0]?.length, MAX_FRAME_BYTES);
    assert.equal(big.length, 0);
  });
});
