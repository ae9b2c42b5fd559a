// The hostile-HTTP generator for test/integration/http-fuzz.test.ts: fast-check arbitraries
// driven by docs/openapi.json (every route and method, its path and query parameters and its
// body schema), mutated into the malformed: random and huge strings, unicode, NUL, bad
// percent-encoding, invalid and deeply nested JSON, huge numbers, duplicate keys, wrong content
// types and encodings, broken framing. Requests go out as raw bytes on a fresh socket, so
// framing errors the Node client would refuse to produce reach the daemon too.
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Schema = Record<string, unknown>;

interface Doc {
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, Schema> };
}

export interface DocOperation {
  method: string;
  template: string;
  pathParams: string[];
  query: { name: string; schema: Schema; required: boolean }[];
  body: { type: string; schema: Schema } | undefined;
}

export const OPENAPI: Doc = JSON.parse(
  readFileSync(new URL('../../../docs/openapi.json', import.meta.url), 'utf8'),
) as Doc;

export const ERROR_CODES: string[] = (
  (OPENAPI.components.schemas.Error!.properties as Record<string, Schema>).code!.enum as string[]
).slice();

export function operations(doc: Doc = OPENAPI): DocOperation[] {
  const out: DocOperation[] = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    const shared = (item.parameters ?? []) as { name: string; in: string; required?: boolean; schema: Schema }[];
    for (const method of ['get', 'post', 'put', 'delete']) {
      const op = item[method] as
        | {
            parameters?: { name: string; in: string; required?: boolean; schema: Schema }[];
            requestBody?: { content: Record<string, { schema: Schema }> };
          }
        | undefined;
      if (!op) continue;
      const params = [...shared, ...(op.parameters ?? [])];
      const content = op.requestBody ? Object.entries(op.requestBody.content)[0] : undefined;
      out.push({
        method: method.toUpperCase(),
        template,
        pathParams: params.filter((p) => p.in === 'path').map((p) => p.name),
        query: params
          .filter((p) => p.in === 'query')
          .map((p) => ({ name: p.name, schema: p.schema, required: p.required === true })),
        body: content ? { type: content[0], schema: content[1].schema } : undefined,
      });
    }
  }
  return out;
}

function deref(s: Schema, doc: Doc): Schema {
  const ref = s.$ref;
  if (typeof ref !== 'string') return s;
  return deref({ ...doc.components.schemas[ref.replace('#/components/schemas/', '')]!, ...omit(s, '$ref') }, doc);
}

function omit(s: Schema, key: string): Schema {
  const { [key]: _dropped, ...rest } = s;
  return rest;
}

// ---- strings ----

const HOSTILE_STRINGS = [
  '',
  '..',
  '../../etc/passwd',
  '/etc/passwd',
  'a\u0000b',
  '\u0000',
  '%00',
  '%2e%2e',
  '%2F',
  'a%2Fb',
  '%',
  '%zz',
  '%c0%af',
  '\ud800',
  '\udfff\ud800',
  '\u202e',
  'ехе',
  '😀'.repeat(40),
  '-rf',
  '$(id)',
  '`id`',
  "'; DROP TABLE sandboxes; --",
  '{"a":1}',
  '\r\nX-Injected: 1',
  ' ',
  'true',
  'null',
  '-1',
  '1e309',
  'sb-aaaaaaaaaaaaaaaa',
  'sb-AAAAAAAAAAAAAAAA',
  'default',
  'a'.repeat(65),
  'a'.repeat(5000),
];

/** Strings a parameter or a JSON field may be given. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  // Long ones by repetition: generating 20,000 characters one by one would dominate the run.
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.string({ minLength: 1, maxLength: 8 }), fc.integer({ min: 200, max: 3000 }))
      .map(([x, n]) => x.repeat(n)),
  },
);

/** Numbers at and past every edge. */
const hostileNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, -1, 1, 0.5, 2 ** 31, 2 ** 53, 2 ** 53 + 2, -(2 ** 63), 1e308, Number.MIN_VALUE),
);

function schemaArb(s0: Schema, doc: Doc, depth: number): fc.Arbitrary<Json> {
  const s = deref(s0, doc);
  const wild: fc.Arbitrary<Json> = fc.oneof(
    hostileString as fc.Arbitrary<Json>,
    hostileNumber as fc.Arbitrary<Json>,
    fc.constantFrom<Json>(null, true, false, [], {}, [null], { '': '' }),
  );
  const variants: fc.Arbitrary<Json>[] = [];
  if (Array.isArray(s.enum)) variants.push(fc.constantFrom(...(s.enum as Json[])));
  if (s.const !== undefined) variants.push(fc.constant(s.const as Json));
  for (const key of ['anyOf', 'oneOf'] as const)
    if (Array.isArray(s[key]) && depth < 4)
      variants.push(fc.oneof(...(s[key] as Schema[]).map((x) => schemaArb(x, doc, depth + 1))));
  const types = Array.isArray(s.type) ? (s.type as string[]) : typeof s.type === 'string' ? [s.type] : [];
  for (const type of types) {
    if (type === 'string') variants.push(hostileString);
    if (type === 'boolean') variants.push(fc.boolean());
    if (type === 'null') variants.push(fc.constant(null));
    if (type === 'integer' || type === 'number') {
      const min = typeof s.minimum === 'number' ? s.minimum : -1000;
      const max = typeof s.maximum === 'number' ? s.maximum : 1000;
      variants.push(
        fc.constantFrom(min, max, min - 1, max + 1),
        fc.integer({ min: Math.ceil(min), max: Math.floor(Math.min(max, min + 1000)) }),
        hostileNumber,
      );
    }
    if (type === 'array' && depth < 4) {
      const items = s.items ? schemaArb(s.items as Schema, doc, depth + 1) : wild;
      variants.push(fc.array(items, { maxLength: 6 }));
      variants.push(
        fc.tuple(items, fc.integer({ min: 100, max: 1000 })).map(([x, n]) => Array.from({ length: n }, () => x)),
      );
    }
    if (type === 'object' && depth < 4) {
      const props = (s.properties ?? {}) as Record<string, Schema>;
      const record: Record<string, fc.Arbitrary<Json>> = {};
      for (const [k, v] of Object.entries(props)) record[k] = schemaArb(v, doc, depth + 1);
      const known = fc.record(record, { requiredKeys: [] }) as fc.Arbitrary<Record<string, Json>>;
      variants.push(known);
      variants.push(
        fc.tuple(known, fc.dictionary(hostileString, wild, { maxKeys: 3 })).map(([a, b]) => ({ ...b, ...a })),
      );
      if (s.additionalProperties && typeof s.additionalProperties === 'object')
        variants.push(
          fc.dictionary(hostileString, schemaArb(s.additionalProperties as Schema, doc, depth + 1), { maxKeys: 40 }),
        );
    }
  }
  if (variants.length === 0) variants.push(wild);
  // Mostly shaped like the schema, sometimes anything at all.
  return fc.oneof({ weight: 5, arbitrary: fc.oneof(...variants) }, { weight: 1, arbitrary: wild });
}

/** Values the schema accepts (as far as a generator cheaply can): they reach the handlers. */
function validArb(s0: Schema, doc: Doc, depth: number): fc.Arbitrary<Json> {
  const s = deref(s0, doc);
  if (s.const !== undefined) return fc.constant(s.const as Json);
  if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as Json[]));
  for (const key of ['anyOf', 'oneOf'] as const)
    if (Array.isArray(s[key])) return fc.oneof(...(s[key] as Schema[]).map((x) => validArb(x, doc, depth + 1)));
  const type = Array.isArray(s.type) ? (s.type as string[])[0] : (s.type as string | undefined);
  switch (type) {
    case 'string': {
      const max = typeof s.maxLength === 'number' ? Math.min(s.maxLength, 64) : 32;
      const min = typeof s.minLength === 'number' ? s.minLength : 0;
      if (typeof s.pattern === 'string')
        return fc
          .stringMatching(new RegExp(s.pattern))
          .filter((x) => x.length >= min && x.length <= Math.max(max, min));
      return fc.string({ minLength: min, maxLength: Math.max(max, min) });
    }
    case 'integer':
    case 'number': {
      const min = typeof s.minimum === 'number' ? s.minimum : 0;
      const max = typeof s.maximum === 'number' ? s.maximum : 1000;
      return type === 'integer'
        ? fc.integer({ min: Math.ceil(min), max: Math.floor(max) })
        : fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
    }
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      const min = typeof s.minItems === 'number' ? s.minItems : 0;
      return depth > 4
        ? fc.constant([])
        : fc.array(validArb((s.items ?? {}) as Schema, doc, depth + 1), {
            minLength: min,
            maxLength: Math.max(min, 3),
          });
    }
    case 'object': {
      const props = (s.properties ?? {}) as Record<string, Schema>;
      const record: Record<string, fc.Arbitrary<Json>> = {};
      for (const [k, v] of Object.entries(props)) record[k] = validArb(v, doc, depth + 1);
      return fc.record(record, {
        requiredKeys: ((s.required ?? []) as string[]).filter((k) => k in record),
      });
    }
    default:
      return fc.constant(null);
  }
}

// ---- bodies ----

const deep = (n: number, open: string, mid: string, close: string): string => open.repeat(n) + mid + close.repeat(n);

/** Bodies that are not JSON, or JSON a parser should think twice about. */
const malformedJson: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .constantFrom(
      '',
      '{',
      '{"a":',
      '}',
      'null',
      '[]',
      '"str"',
      '1',
      '{"snapshot_tag":"a","snapshot_tag":"b"}',
      '{"tag":"x","tag":{"$ne":1}}',
      '{"__proto__":{"admin":true}}',
      '{"constructor":{"prototype":{"x":1}}}',
      '{"n":1e999999}',
      '{"n":-1e999999}',
      '{"n":123456789012345678901234567890123456789}',
      '{"n":0.0000000000000000000000000000001}',
      '{"n":NaN}',
      '{"n":Infinity}',
      '{"a":"\\ud800"}',
      '{"a":"\\u0000"}',
      '{"a":"\u0000"}',
      '\ufeff{}',
      '{}\u0000',
      "{'a':1}",
      '{"a":1,}',
      '[1,2,]',
      '{"a" 1}',
      deep(1000, '[', '', ']'),
      deep(100_000, '[', '', ']'),
      deep(10_000, '{"a":', '1', '}'),
      deep(50_000, '{"snapshot_tag":', '"x"', '}'),
    )
    .map((s) => Buffer.from(s, 'utf8')),
  fc.string({ maxLength: 200 }).map((s) => Buffer.from(s, 'utf8')),
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  fc.constantFrom(
    Buffer.from([0xc0, 0xaf, 0x7b, 0x7d]), // overlong UTF-8
    Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]), // UTF-16LE with BOM
    Buffer.from('{"snapshot_tag":"\xff\xfe"}', 'latin1'),
  ),
);

export interface FuzzRequest {
  label: string;
  method: string;
  path: string;
  headers: [string, string][];
  body: Buffer;
  /** Send the body with chunked transfer encoding (or broken chunking). */
  chunked: 'no' | 'ok' | 'broken';
  /** Content-Length to declare instead of the real one. */
  contentLength: 'real' | 'none' | 'short' | 'huge' | 'junk' | 'twice';
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND'];

function paramArb(name: string): fc.Arbitrary<string> {
  const valid =
    name === 'id'
      ? fc.stringMatching(/^sb-[a-z2-7]{16}$/)
      : fc.stringMatching(/^fz[A-Za-z0-9_-]{0,20}$/).filter((t) => t.length <= 64);
  return fc.oneof(
    { weight: 8, arbitrary: valid },
    { weight: 2, arbitrary: hostileString.map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, 'x'))) },
    { weight: 2, arbitrary: hostileString.map(rawPathText) },
    {
      weight: 1,
      arbitrary: fc.constantFrom('..', '.', '%2e%2e', '%', '%zz', '%00', 'a%2Fb', '', '%ff%fe', '%c0%ae%c0%ae'),
    },
  );
}

/** A string as it may appear in a raw request line: no CR, LF, space or #, the rest as is. */
function rawPathText(s: string): string {
  return s.replace(/[\r\n #?]/g, '_');
}

function queryArb(op: DocOperation): fc.Arbitrary<string> {
  const pair = (k: fc.Arbitrary<string>, v: fc.Arbitrary<string>): fc.Arbitrary<string> =>
    fc.tuple(k, v).map(([a, b]) => `${a}=${b}`);
  const names = op.query.map((q) => q.name);
  const key = names.length
    ? fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...names) },
        { weight: 1, arbitrary: hostileString.map(encodeQ) },
      )
    : hostileString.map(encodeQ);
  const value = fc.oneof(
    fc.constantFrom('true', 'false', '/', '/etc/hostname', '/tmp/x', 'running', '0644', '1', ''),
    hostileString.map(encodeQ),
    hostileString.map(rawPathText),
  );
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant('') },
    {
      weight: 4,
      arbitrary: fc.array(pair(key, value), { maxLength: 4 }).map((ps) => (ps.length ? `?${ps.join('&')}` : '')),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '?',
        '?&&&',
        '?=',
        '?a',
        '?%',
        '?path=%zz',
        '?path=/a&path=/b',
        '?' + 'a=1&'.repeat(2000),
      ),
    },
  );
}

function encodeQ(s: string): string {
  return encodeURIComponent(s.replace(/[\ud800-\udfff]/g, 'x'));
}

function bodyArb(op: DocOperation): fc.Arbitrary<{ body: Buffer; type: string | undefined }> {
  const types = fc.oneof(
    { weight: 6, arbitrary: fc.constant(op.body?.type ?? 'application/json') },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        undefined,
        'text/plain',
        'application/json; charset=utf-16',
        'application/JSON',
        'application/json;;;',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/octet-stream',
        '*/*',
        'application/json\u0000',
        'ÿ',
      ),
    },
  );
  let body: fc.Arbitrary<Buffer>;
  if (op.body?.type === 'application/json') {
    const shaped = schemaArb(op.body.schema, OPENAPI, 0).map((v) => Buffer.from(JSON.stringify(v) ?? 'null', 'utf8'));
    const valid = validArb(op.body.schema, OPENAPI, 0).map((v) => Buffer.from(JSON.stringify(v), 'utf8'));
    body = fc.oneof(
      { weight: 4, arbitrary: valid },
      { weight: 6, arbitrary: shaped },
      { weight: 3, arbitrary: malformedJson },
      { weight: 1, arbitrary: fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null', 'utf8')) },
    );
  } else if (op.body) {
    body = fc.oneof(
      fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
      malformedJson,
    );
  } else {
    body = fc.oneof({ weight: 4, arbitrary: fc.constant(Buffer.alloc(0)) }, { weight: 1, arbitrary: malformedJson });
  }
  const oversized = fc.constant(null).map(() => Buffer.from(`{"a":"${'x'.repeat(2 * 1024 * 1024 + 16)}"}`));
  return fc
    .tuple(fc.oneof({ weight: 200, arbitrary: body }, { weight: 1, arbitrary: oversized }), types)
    .map(([b, type]) => ({ body: b, type }));
}

const headerValue = fc.oneof(
  hostileString.map((s) => s.replace(/[\r\n]/g, '')),
  fc.constantFrom('gzip', 'br', 'deflate', 'identity', 'chunked', '100-continue', 'h2c', 'websocket', 'trailers'),
);
const extraHeader: fc.Arbitrary<[string, string]> = fc.tuple(
  fc.oneof(
    {
      weight: 5,
      arbitrary: fc.constantFrom(
        'accept',
        'accept-encoding',
        'content-encoding',
        'user-agent',
        'x-forwarded-for',
        'cookie',
        'expect',
        'te',
        'upgrade',
        'range',
        'if-none-match',
        'origin',
        'x-request-id',
      ),
    },
    { weight: 1, arbitrary: fc.constantFrom('x fuzz', 'x:fuzz', '', 'ü', 'x\u0000y', 'authorization') },
  ),
  headerValue,
);

export interface Tokens {
  right: string;
  /** Wrong tokens the generator used: the test checks none of them reaches a log. */
  wrong: Set<string>;
}

function authArb(tokens: Tokens): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: 17, arbitrary: fc.constant(`Bearer ${tokens.right}`) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    {
      weight: 1,
      arbitrary: fc.stringMatching(/^[A-Za-z0-9]{16,40}$/).map((t) => {
        tokens.wrong.add(`wrong${t}`);
        return `Bearer wrong${t}`;
      }),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'Basic dXNlcjpwYXNz',
        'Bearer',
        'Bearer ',
        `bearer  ${tokens.right}`,
        `Bearer ${tokens.right} x`,
        `Bearer ${tokens.right}\u00ff`,
        'Bearer \u0000',
      ),
    },
  );
}

export function requestArb(ops: DocOperation[], tokens: Tokens): fc.Arbitrary<FuzzRequest> {
  // One arbitrary per operation, built once (building them per value would dominate the run).
  return fc.oneof(...ops.map((op) => operationArb(op, tokens)));
}

function operationArb(op: DocOperation, tokens: Tokens): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      method: fc.oneof(
        { weight: 12, arbitrary: fc.constant(op.method) },
        { weight: 1, arbitrary: fc.constantFrom(...METHODS) },
      ),
      params: fc.tuple(...op.pathParams.map(paramArb), fc.constant('')),
      tail: fc.oneof(
        { weight: 20, arbitrary: fc.constant('') },
        { weight: 1, arbitrary: fc.constantFrom('/', '//', '/x', '/..', '%20') },
      ),
      query: queryArb(op),
      body: bodyArb(op),
      auth: authArb(tokens),
      extra: fc.array(extraHeader, { maxLength: 3 }),
      chunked: fc.oneof(
        { weight: 12, arbitrary: fc.constant<'no'>('no') },
        { weight: 1, arbitrary: fc.constantFrom<'ok' | 'broken'>('ok', 'broken') },
      ),
      contentLength: fc.oneof(
        { weight: 20, arbitrary: fc.constant<'real'>('real') },
        {
          weight: 1,
          arbitrary: fc.constantFrom<FuzzRequest['contentLength']>('none', 'short', 'huge', 'junk', 'twice'),
        },
      ),
    })
    .map(({ method, params, tail, query, body, auth, extra, chunked, contentLength }) => {
      let i = 0;
      const path = op.template.replace(/\{[^}]+\}/g, () => params[i++]!) + tail + query;
      const headers: [string, string][] = [];
      if (auth !== undefined) headers.push(['authorization', auth]);
      if (body.type !== undefined) headers.push(['content-type', body.type]);
      headers.push(...extra);
      return {
        label: `${op.method} ${op.template}`,
        method,
        path,
        headers,
        body: body.body,
        chunked,
        contentLength,
      };
    });
}

// ---- the wire ----

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Serialises a request exactly as generated (no normalisation), with `Connection: close`. */
export function serialise(r: FuzzRequest, host: string): Buffer {
  const lines = [`${r.method} ${r.path} HTTP/1.1`, `host: ${host}`, 'connection: close'];
  for (const [k, v] of r.headers) lines.push(`${k}: ${v}`);
  let body = r.body;
  if (r.chunked !== 'no') {
    lines.push('transfer-encoding: chunked');
    body =
      r.chunked === 'ok'
        ? Buffer.concat([Buffer.from(`${r.body.length.toString(16)}\r\n`), r.body, Buffer.from('\r\n0\r\n\r\n')])
        : Buffer.concat([Buffer.from('zz\r\n'), r.body, Buffer.from('\r\n')]);
    if (r.contentLength === 'twice') lines.push(`content-length: ${r.body.length}`);
  } else {
    const n = r.body.length;
    if (r.contentLength === 'real' && (n > 0 || r.method !== 'GET')) lines.push(`content-length: ${n}`);
    if (r.contentLength === 'short') lines.push(`content-length: ${Math.max(0, n - 1)}`);
    if (r.contentLength === 'huge') lines.push('content-length: 99999999999');
    if (r.contentLength === 'junk') lines.push('content-length: 12abc');
    if (r.contentLength === 'twice') lines.push(`content-length: ${n}`, `content-length: ${n + 1}`);
  }
  // Header text as UTF-8 bytes (non-ASCII and NUL included: the parser must cope).
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8'), body]);
}

/** Sends raw bytes on a fresh connection and reads the answer until the server closes. */
export function sendRaw(
  port: number,
  bytes: Buffer,
  opts: { timeoutMs?: number; localAddress?: string } = {},
): Promise<RawResponse | { error: string; received: Buffer }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sock = connect({
      host: '127.0.0.1',
      port,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    let settled = false;
    const done = (error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      const received = Buffer.concat(chunks);
      const parsed = parseResponse(received);
      resolve(parsed ?? { error: error ?? 'no complete response', received });
    };
    const timer = setTimeout(() => done('timed out'), opts.timeoutMs ?? 15_000);
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      if (parseResponse(Buffer.concat(chunks))) done();
    });
    // EPIPE/ECONNRESET after an early answer: 'close' follows; judge what was read by then.
    let lastError: string | undefined;
    sock.on('error', (e) => (lastError = e.message));
    sock.on('close', () => done(lastError));
    // write, not end: Node's server drops the request of a client that half-closes (FIN)
    // before the answer is ready. `connection: close` makes the server close after answering.
    sock.on('connect', () => sock.write(bytes));
  });
}

/** The first complete response in `buf` (Content-Length or chunked), or undefined. */
export function parseResponse(buf: Buffer): RawResponse | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
  if (!m) return undefined;
  const status = Number(m[1]);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let rest = buf.subarray(end + 4);
  if (status === 100) return parseResponse(rest);
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    const out: Buffer[] = [];
    for (;;) {
      const nl = rest.indexOf('\r\n');
      if (nl < 0) return undefined;
      const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
      if (Number.isNaN(size)) return undefined;
      if (size === 0) return { status, headers, body: Buffer.concat(out) };
      if (rest.length < nl + 2 + size + 2) return undefined;
      out.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
  }
  const len = headers['content-length'] === undefined ? 0 : Number(headers['content-length']);
  if (rest.length < len) return undefined;
  return { status, headers, body: rest.subarray(0, len) };
}
