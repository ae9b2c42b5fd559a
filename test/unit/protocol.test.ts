import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  arrayOf,
  base64,
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
      () => OPS.identity.params({ sandboxId: 'a', hostname: 'bad_host', entropy: '', wallClockMs: 1 }, 'identity'),
      /hostname/,
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

void describe('frames', () => {
  void it('parses each guest frame kind and rejects the rest', () => {
    assert.deepEqual(parseGuestFrame({ id: 1, stream: 'stdout', data: 'YQ==' }), {
      id: 1,
      stream: 'stdout',
      data: 'YQ==',
    });
    assert.deepEqual(parseGuestFrame({ id: 2, ok: true, result: { a: 1 } }), { id: 2, ok: true, result: { a: 1 } });
    assert.deepEqual(parseGuestFrame({ id: null, ok: false, error: { code: 'busy', message: 'm' } }), {
      id: null,
      ok: false,
      error: { code: 'busy', message: 'm' },
    });
    assert.throws(
      () => parseGuestFrame({ id: 1, ok: false, error: { code: 'unauthorized', message: 'm' } }),
      /error\.code/,
    );
    assert.throws(() => parseGuestFrame({ id: 1, ok: true }), /result: missing/);
    assert.throws(() => parseGuestFrame({ id: -1, ok: true, result: 1 }), /frame\.id/);
    assert.throws(() => parseGuestFrame({ id: '1', ok: true, result: 1 }), /frame\.id/);
    assert.throws(() => parseGuestFrame({ id: 1, stream: 'stdin', data: '' }), /frame\.stream/);
    assert.throws(() => parseGuestFrame({ id: 1, stream: 'stdout', data: 'x' }), /base64/);
    assert.throws(() => parseGuestFrame({ id: 1 }), /expected `stream` or `ok`/);
    assert.throws(() => parseGuestFrame('x'), /expected an object/);
  });

  void it('parses host frames: requests keep params beside op', () => {
    assert.deepEqual(parseHostFrame({ id: 3, op: 'exec', argv: ['ls'] }), {
      kind: 'request',
      id: 3,
      op: 'exec',
      params: { argv: ['ls'] },
    });
    assert.deepEqual(parseHostFrame({ id: 3, data: '' }), { kind: 'data', id: 3, data: '' });
    assert.throws(() => parseHostFrame({ id: 3, end: true, sha256: 'nothex' }), /sha256/);
    assert.throws(() => parseHostFrame({ id: 3 }), /expected `op`, `data` or `end`/);
  });

  void it('sniffs the id of a frame too large to parse', () => {
    assert.equal(sniffFrameId(Buffer.from('{"id":1234,"ok":true,"result":"xxxx')), 1234);
    assert.equal(sniffFrameId(Buffer.from('{"ok":true,"id":1}')), undefined);
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

  void it('joins lines split across chunks and skips empty ones', () => {
    const { s, lines } = collect(100);
    s.push(Buffer.from('ab'));
    s.push(Buffer.from('c\n\n\r\nde'));
    s.push(Buffer.from('f\ngh'));
    assert.deepEqual(lines, ['abc', 'def']);
    assert.equal(s.bufferedBytes, 2);
    s.reset();
    s.push(Buffer.from('i\n'));
    assert.deepEqual(lines, ['abc', 'def', 'i']);
  });

  void it('skips an oversized line without buffering it, then carries on', () => {
    const { s, lines, big } = collect(10);
    s.push(Buffer.from('{"id":7,"x'));
    s.push(Buffer.from('y'.repeat(1000)));
    assert.ok(s.bufferedBytes <= 10);
    s.push(Buffer.from('zz\nok\n'));
    assert.deepEqual(lines, ['ok']);
    assert.equal(big.length, 1);
    assert.equal(big[0]?.bytes, 10 + 1000 + 2);
    assert.equal(sniffFrameId(big[0]?.head ?? Buffer.alloc(0)), 7);
  });

  void it('accepts a line of exactly the limit', () => {
    const { s, lines, big } = collect(MAX_FRAME_BYTES);
    s.push(Buffer.alloc(MAX_FRAME_BYTES, 97));
    s.push(Buffer.from('\n'));
    assert.equal(lines[0]?.length, MAX_FRAME_BYTES);
    assert.equal(big.length, 0);
  });
});
