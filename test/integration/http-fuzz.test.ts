// Hostile HTTP input against a real forkd-controller (token auth on, EMPTY data dir: no image,
// no kernel, no snapshot, so no request can boot a guest): a property-based fuzzer driven by
// docs/openapi.json (test/helpers/http-fuzz.ts), slow clients, oversized headers, the
// wrong-token throttle, and no token in any log.
//
// Short profile (npm test): FORKD_FUZZ_RUNS unset = 2000 requests. Long profile
// (npm run test:reliability): FORKD_FUZZ_RUNS=100000. FORKD_FUZZ_SEED replays a run;
// FORKD_FUZZ_RESULTS=FILE writes the figures as JSON.
// test-lane: host (no guest, nothing host-wide: scripts/run-tests.mjs runs it beside the guest suites)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import {
  api,
  assertConforms,
  controllerDataDir,
  daemonArgs,
  errorCode,
  startDaemon,
  type ApiResponse,
  type DaemonProcess,
} from '../helpers/controller.js';
import {
  ERROR_CODES,
  operations,
  requestArb,
  sendRaw,
  serialise,
  type FuzzRequest,
  type RawResponse,
  type Tokens,
} from '../helpers/http-fuzz.js';

const RUNS = Number(process.env.FORKD_FUZZ_RUNS ?? 2000);
const SEED = process.env.FORKD_FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.FORKD_FUZZ_SEED);
const WORKERS = 4;
const TOKEN = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';
const HEADERS_TIMEOUT_MS = 1500;
const REQUEST_TIMEOUT_MS = 3000;

let root: string;
let dataDir: string;
let d: DaemonProcess;
let port: number;
const tokens: Tokens = { right: TOKEN, wrong: new Set() };
/** Figures for bench/results/reliability.json (written when FORKD_FUZZ_RESULTS names a file). */
const results: Record<string, unknown> = {};
const round = (x: number): number => Math.round(x * 100) / 100;

async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: string): Promise<void> => {
    for (const e of await readdir(p, { withFileTypes: true })) {
      const full = join(p, e.name);
      const st = await stat(full);
      out.push(`${relative(dir, full)} ${e.isDirectory() ? 'dir' : st.size} ${st.mtimeMs}`);
      if (e.isDirectory()) await walk(full);
    }
  };
  await walk(dir);
  return out.sort();
}

before(async () => {
  ({ root, dataDir } = await controllerDataDir(false));
  const tokenFile = join(root, 'token');
  await writeFile(tokenFile, TOKEN, { mode: 0o600 });
  d = await startDaemon(daemonArgs(dataDir, root, ['--token-file', tokenFile]), {
    env: {
      FORKD_VM_USER: 'nobody',
      FORKD_HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      FORKD_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    },
  });
  port = Number(d.address.split(':').pop());
});

after(async () => {
  if (d) assert.equal(await d.stop(), 0, d.stderr().slice(-2000));
  await rm(root, { recursive: true, force: true });
  const out = process.env.FORKD_FUZZ_RESULTS;
  if (out) {
    // Merged into the file: other suites (load, soak, faults) keep their own keys there.
    const prior = (await readFile(out, 'utf8').then(JSON.parse, () => ({}))) as Record<string, unknown>;
    await writeFile(
      out,
      `${JSON.stringify({ ...prior, http_hostile: { ...results, recorded_at: new Date().toISOString() } }, null, 2)}\n`,
    );
  }
});

/** The checks every answer must pass; returns a reason when it does not. */
function judge(r: FuzzRequest, res: RawResponse): string | undefined {
  if (res.status >= 500) return `a ${res.status}: ${res.body.toString('utf8').slice(0, 500)}`;
  if (res.status < 400) {
    // Success is possible only for a well-formed request of a read route.
    const asApi: ApiResponse = {
      status: res.status,
      headers: res.headers,
      body: res.body,
      text: res.body.toString('utf8'),
      json: String(res.headers['content-type']).startsWith('application/json')
        ? (JSON.parse(res.body.toString('utf8')) as unknown)
        : undefined,
    };
    try {
      assertConforms(r.method, r.path, asApi);
    } catch (err) {
      return `a ${res.status} that breaks the document: ${String(err).slice(0, 500)}`;
    }
    if (r.method !== 'GET') return `a ${res.status} for a state-changing request`;
    return undefined;
  }
  if (!String(res.headers['content-type']).startsWith('application/json'))
    return `a ${res.status} without a JSON body (content-type ${res.headers['content-type']})`;
  let body: unknown;
  try {
    body = JSON.parse(res.body.toString('utf8'));
  } catch {
    return `a ${res.status} whose body is not JSON: ${res.body.toString('utf8').slice(0, 200)}`;
  }
  const b = body as { error?: unknown; code?: unknown };
  if (typeof b.error !== 'string' || typeof b.code !== 'string' || !ERROR_CODES.includes(b.code))
    return `a ${res.status} whose body is not {error, code}: ${JSON.stringify(body).slice(0, 200)}`;
  if ((res.status === 429 || res.status === 503) && !res.headers['retry-after'])
    return `a ${res.status} without Retry-After`;
  return undefined;
}

describe('fuzzing every route of docs/openapi.json', () => {
  test(`${RUNS} generated requests: no 5xx, no crash, {error, code} on every 4xx, nothing on disk changed`, async (t) => {
    const ops = operations();
    assert.equal(ops.length, 36, 'every operation of the document');
    const before = await listing(dataDir);
    const statuses = new Map<number, number>();
    const byRoute = new Map<string, number>();
    const codes = new Map<string, number>();
    let sent = 0;
    const failures: string[] = [];
    const started = Date.now();
    const arb = requestArb(ops, tokens);
    const property = fc.asyncProperty(arb, async (r) => {
      const res = await sendRaw(port, serialise(r, `127.0.0.1:${port}`));
      sent++;
      if ('error' in res) {
        failures.push(
          `${r.label} (${r.method} ${r.path.slice(0, 200)}): no answer (${res.error}); got ${res.received.toString('latin1').slice(0, 300)}`,
        );
        throw new Error(failures.at(-1));
      }
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      byRoute.set(r.label, (byRoute.get(r.label) ?? 0) + 1);
      const why = judge(r, res);
      if (why) {
        failures.push(`${r.label} (${r.method} ${r.path.slice(0, 200)}): ${why}`);
        throw new Error(failures.at(-1));
      }
      if (res.status >= 400) {
        const code = String((JSON.parse(res.body.toString('utf8') || '{}') as { code?: unknown }).code);
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    });
    const perWorker = Math.ceil(RUNS / WORKERS);
    try {
      await Promise.all(
        Array.from({ length: WORKERS }, (_, w) =>
          fc.assert(property, { numRuns: perWorker, seed: SEED + w, endOnFailure: true }),
        ),
      );
    } catch (err) {
      // fast-check's report has the seed and the counterexample; ours has why it failed.
      throw new Error(
        `${String(err)}\nfailures seen (seed ${SEED}):\n${[...new Set(failures)].slice(0, 5).join('\n')}`,
      );
    }
    const seconds = (Date.now() - started) / 1000;

    // The daemon is up and healthy; it logged no unhandled error.
    assert.equal(d.proc.exitCode, null, 'the daemon is still running');
    assert.equal((await api(d.baseUrl, 'GET', '/healthz')).status, 200);
    assert.ok(!d.stderr().includes('unhandled error'), d.stderr().slice(-3000));
    // No request changed anything: same files, sizes and mtimes; no event audited.
    assert.deepEqual(await listing(dataDir), before);
    // ... and no sandbox exists (its namespace, cgroup and run dir would follow from one).
    const list = await api(d.baseUrl, 'GET', '/v1/sandboxes', { token: TOKEN });
    assert.deepEqual((list.json as { sandboxes: unknown[] }).sandboxes, []);
    const audit = await readFile(join(root, 'audit.log'), 'utf8');
    const events = audit
      .split('\n')
      .filter((l) => l.includes('"type":"event"'))
      .map((l) => (JSON.parse(l) as { event: string }).event);
    assert.deepEqual(events, ['audit.opened'], 'no state change was audited');
    const metrics = (await api(d.baseUrl, 'GET', '/metrics', { token: TOKEN })).text;
    assert.doesNotMatch(metrics, /status="5\d\d"/);

    const figures = {
      requests: sent,
      seconds,
      requests_per_second: Math.round(sent / seconds),
      seed: SEED,
      workers: WORKERS,
      status_5xx: [...statuses].filter(([s]) => s >= 500).reduce((a, [, n]) => a + n, 0),
      crashes: 0,
      statuses: Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])),
      error_codes: Object.fromEntries([...codes].sort()),
      by_route: Object.fromEntries([...byRoute].sort()),
      node: process.version,
    };
    t.diagnostic(`fuzz figures: ${JSON.stringify(figures)}`);
    results.fuzz = figures;
    assert.ok(sent >= RUNS, `${sent} requests sent`);
  });
});

describe('slow clients, big headers, wrong tokens', () => {
  /** Opens a connection, sends `head`, then one byte of `trickle` every `everyMs` until the server answers or closes. */
  const trickle = (
    head: string,
    drip: string,
    everyMs: number,
  ): Promise<{ ms: number; res?: RawResponse; raw: string }> =>
    new Promise((resolve) => {
      const t0 = Date.now();
      const chunks: Buffer[] = [];
      let i = 0;
      let timer: NodeJS.Timeout | undefined;
      const sock = connect({ host: '127.0.0.1', port }, () => {
        sock.write(head);
        timer = setInterval(() => {
          if (sock.writable) sock.write(drip[i++ % drip.length]!);
        }, everyMs);
      });
      const hardStop = setTimeout(() => sock.destroy(), 20_000);
      sock.on('data', (c: Buffer) => chunks.push(c));
      sock.on('error', () => undefined);
      sock.on('close', () => {
        clearInterval(timer);
        clearTimeout(hardStop);
        const raw = Buffer.concat(chunks);
        resolve({ ms: Date.now() - t0, res: parseRawLoose(raw), raw: raw.toString('latin1') });
      });
    });

  test('headers trickled in are cut off at the headers deadline with 408 {error, code}', async () => {
    const r = await trickle(
      `GET /v1/sandboxes HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\n`,
      'x-slow: 1\r\n',
      100,
    );
    assert.equal(r.res?.status, 408, r.raw);
    assert.equal(codeOf(r.res.body.toString()), 'request_timeout');
    assert.ok(r.ms >= HEADERS_TIMEOUT_MS - 100 && r.ms < HEADERS_TIMEOUT_MS + 2500, `cut after ${r.ms} ms`);
    results.slow_headers = { deadline_ms: HEADERS_TIMEOUT_MS, cut_after_ms: r.ms, status: r.res.status };
  });

  test('a body trickled in is cut off at the request deadline with 408 {error, code}', async () => {
    const r = await trickle(
      `POST /v1/sandboxes HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{"snapshot_tag":"`,
      'a',
      100,
    );
    assert.equal(r.res?.status, 408, r.raw);
    assert.equal(codeOf(r.res.body.toString()), 'request_timeout');
    assert.ok(r.ms >= REQUEST_TIMEOUT_MS - 100 && r.ms < REQUEST_TIMEOUT_MS + 2500, `cut after ${r.ms} ms`);
    results.slow_body = { deadline_ms: REQUEST_TIMEOUT_MS, cut_after_ms: r.ms, status: r.res.status };
    assert.equal(d.proc.exitCode, null);
  });

  test('oversized headers are refused with 431 {error, code}', async () => {
    for (const head of [
      `GET /v1/sandboxes HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`,
      `GET /v1/sandboxes HTTP/1.1\r\nhost: x\r\n${Array.from({ length: 4000 }, (_, i) => `x-h${i}: v`).join('\r\n')}\r\n\r\n`,
      `GET /v1/sandboxes?${'a=1&'.repeat(5000)} HTTP/1.1\r\nhost: x\r\n\r\n`,
    ]) {
      const res = await sendRaw(port, Buffer.from(head));
      assert.ok(!('error' in res), JSON.stringify(res));
      assert.equal(res.status, 431);
      assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
      assert.equal(codeOf(res.body.toString()), 'headers_too_large');
    }
  });

  test('wrong tokens from one address are throttled (429 + Retry-After); the right token from it is not slowed', async (t) => {
    const from = '127.0.0.7'; // its own budget, untouched by the fuzzer's 127.0.0.1
    const get = async (auth: string | undefined): Promise<{ res: RawResponse; ms: number }> => {
      const t0 = performance.now();
      const res = await sendRaw(
        port,
        Buffer.from(
          `GET /v1/sandboxes HTTP/1.1\r\nhost: x\r\nconnection: close\r\n${auth ? `authorization: ${auth}\r\n` : ''}\r\n`,
        ),
        { localAddress: from },
      );
      assert.ok(!('error' in res), JSON.stringify(res));
      return { res, ms: performance.now() - t0 };
    };
    const baseline: number[] = [];
    for (let i = 0; i < 20; i++) baseline.push((await get(`Bearer ${TOKEN}`)).ms);
    const counts = { 401: 0, 429: 0 };
    const goodMs: number[] = [];
    let retryAfter = '';
    for (let i = 0; i < 200; i++) {
      const wrong = `wrongtoken${i.toString().padStart(8, '0')}abcdef`;
      tokens.wrong.add(wrong);
      const { res } = await get(`Bearer ${wrong}`);
      assert.ok(res.status === 401 || res.status === 429, `status ${res.status}`);
      counts[res.status]++;
      if (res.status === 429) {
        retryAfter = res.headers['retry-after'] ?? '';
        assert.equal(codeOf(res.body.toString()), 'rate_limited');
      }
      if (i % 10 === 0) {
        const good = await get(`Bearer ${TOKEN}`);
        assert.equal(good.res.status, 200, 'the right token is served while its address is throttled');
        goodMs.push(good.ms);
      }
    }
    assert.ok(counts[401] >= 100 && counts[401] <= 110, `401s before the throttle: ${counts[401]}`);
    assert.ok(counts[429] >= 90, `429s: ${counts[429]}`);
    assert.ok(Number(retryAfter) >= 1, `Retry-After ${retryAfter}`);
    // Missing tokens are not guesses: still 401, not 429.
    assert.equal((await get(undefined)).res.status, 401);
    const p = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]!;
    assert.ok(
      p(goodMs, 0.5) < p(baseline, 0.5) * 3 + 20,
      `right-token p50 ${p(goodMs, 0.5)} ms vs ${p(baseline, 0.5)} ms`,
    );
    // Another address is not affected at all.
    const other = await sendRaw(
      port,
      Buffer.from(`GET /version HTTP/1.1\r\nhost: x\r\nauthorization: Bearer nottheright0123456789\r\n\r\n`),
      { localAddress: '127.0.0.8' },
    );
    assert.ok(!('error' in other) && other.status === 401);
    const metrics = (await api(d.baseUrl, 'GET', '/metrics', { token: TOKEN })).text;
    assert.match(metrics, /^forkd_auth_failures_total\{reason="throttled"\} [1-9]\d*$/m);
    results.throttle = {
      wrong_tokens_sent: 200,
      answered_401: counts[401],
      answered_429: counts[429],
      retry_after_secs: Number(retryAfter),
      right_token_requests_during_flood: goodMs.length,
      right_token_p50_ms: round(p(goodMs, 0.5)),
      right_token_max_ms: round(Math.max(...goodMs)),
      baseline_p50_ms: round(p(baseline, 0.5)),
    };
    t.diagnostic(`throttle figures: ${JSON.stringify(results.throttle)}`);
  });

  test('a body cut off by broken chunked framing is a 400, never an internal error', async () => {
    const before = (d.stderr().match(/unhandled error/g) ?? []).length;
    const res = await sendRaw(
      port,
      Buffer.from(
        `POST /v1/sandboxes HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer ${TOKEN}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{"sna\r\nzz\r\n`,
      ),
    );
    assert.ok(!('error' in res), JSON.stringify(res));
    assert.equal(res.status, 400);
    assert.equal(codeOf(res.body.toString()), 'invalid_argument');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((d.stderr().match(/unhandled error/g) ?? []).length, before, d.stderr().slice(-1500));
    const metrics = (await api(d.baseUrl, 'GET', '/metrics', { token: TOKEN })).text;
    assert.doesNotMatch(metrics, /status="5\d\d"/);
  });

  test('no token value, right or wrong, appears in the daemon log or the audit log', async () => {
    const daemonLog = d.stderr();
    const audit = await readFile(join(root, 'audit.log'), 'utf8');
    assert.ok(audit.length > 0 && daemonLog.length > 0);
    assert.ok(!daemonLog.includes(TOKEN) && !audit.includes(TOKEN), 'the right token is logged nowhere');
    assert.ok(tokens.wrong.size > 100, `${tokens.wrong.size} wrong tokens tried`);
    // Every wrong token the tests sent is "wrong" + 16-40 letters and digits: one scan of each
    // log finds any of them (a loop of includes() over 100,000 audit lines would not finish).
    const anyWrong = /wrong[A-Za-z0-9]{16,40}/;
    assert.ok([...tokens.wrong].every((w) => anyWrong.test(w)));
    assert.doesNotMatch(daemonLog, anyWrong, 'a wrong token in the daemon log');
    assert.doesNotMatch(audit, anyWrong, 'a wrong token in the audit log');
  });

  test('the daemon is still up, and a well-formed request still works', async () => {
    assert.equal(d.proc.exitCode, null);
    const res = await api(d.baseUrl, 'GET', '/v1/sandboxes', { token: TOKEN });
    assert.equal(res.status, 200);
    assert.equal(
      errorCode(await api(d.baseUrl, 'GET', '/v1/sandboxes/sb-aaaaaaaaaaaaaaaa', { token: TOKEN })),
      'not_found',
    );
  });
});

function codeOf(text: string): unknown {
  return (JSON.parse(text) as { code?: unknown }).code;
}

/** Like parseResponse, but a body cut short is returned as received (the server closed). */
function parseRawLoose(raw: Buffer): RawResponse | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(m[1]), headers, body: raw.subarray(end + 4) };
}
