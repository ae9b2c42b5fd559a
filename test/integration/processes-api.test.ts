// Interactive processes through forkd-controller's REST API (a real daemon, real guest, real
// HTTP): POST .../processes streams NDJSON events of a terminal session driven by .../input and
// .../resize; the process outlives the stream (GET .../events reconnects); stdin and close-input;
// signal; errors for unknown pids and a process without a terminal. Every response, stream lines
// included, is checked against the OpenAPI document.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { rm } from 'node:fs/promises';
import {
  api,
  assertConforms,
  buildSnapshotVia,
  controllerDataDir,
  daemonArgs,
  errorCode,
  startDaemon,
  type DaemonProcess,
} from '../helpers/controller.js';
import { uniqueTag } from '../helpers/env.js';
import { findLeaks } from '../helpers/leaks.js';

interface Line {
  type: string;
  pid?: number;
  data?: string;
  exit_code?: number | null;
  signal?: string | null;
  timed_out?: boolean;
  error?: string;
}

/** An NDJSON response read as it arrives: decoded output so far, the lines, and the end. */
function openStream(base: string, method: string, path: string, json?: unknown) {
  const url = new URL(base);
  const lines: Line[] = [];
  let text = '';
  let out = '';
  let status = 0;
  let headers: IncomingMessage['headers'] = {};
  let req!: ReturnType<typeof request>;
  const done = new Promise<void>((resolve, reject) => {
    const payload = json === undefined ? undefined : Buffer.from(JSON.stringify(json));
    req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        agent: false,
        headers: payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {},
      },
      (res) => {
        status = res.statusCode ?? 0;
        headers = res.headers;
        let pending = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          pending += chunk;
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            const line = JSON.parse(pending.slice(0, nl)) as Line;
            pending = pending.slice(nl + 1);
            lines.push(line);
            if (line.data !== undefined) out += Buffer.from(line.data, 'base64').toString('latin1');
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
        res.on('aborted', resolve);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
  return {
    lines,
    get out() {
      return out;
    },
    /** Resolves once the response ended; checks it against the document. */
    async end(): Promise<Line> {
      await done;
      const body = Buffer.from(text);
      const parsed = String(headers['content-type']).startsWith('application/json')
        ? (JSON.parse(text) as unknown)
        : undefined;
      assertConforms(method, path, { status, headers, body, text, json: parsed });
      return lines.at(-1)!;
    },
    async waitFor(re: RegExp, ms = 30_000): Promise<void> {
      const deadline = Date.now() + ms;
      while (!re.test(out)) {
        if (Date.now() > deadline) throw new Error(`${String(re)} not seen in ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close(): void {
      req.destroy();
    },
  };
}

describe('interactive processes through the REST API', () => {
  let root: string;
  let d: DaemonProcess;
  let id: string;
  const tag = uniqueTag('it-procapi');
  const call = (method: string, path: string, json?: unknown) =>
    api(d.baseUrl, method, path, json === undefined ? {} : { json });
  const base = () => `/v1/sandboxes/${id}/processes`;

  before(async () => {
    const dirs = await controllerDataDir(true);
    root = dirs.root;
    d = await startDaemon(daemonArgs(dirs.dataDir, root));
    await buildSnapshotVia(d.baseUrl, { tag, mem_mib: 256 });
    const res = await call('POST', '/v1/sandboxes', { snapshot_tag: tag, ttl_secs: 600 });
    assert.equal(res.status, 201, res.text);
    id = (res.json as { sandboxes: { id: string }[] }).sandboxes[0]!.id;
  });

  after(async () => {
    await call('DELETE', `/v1/sandboxes/${id}`).catch(() => undefined);
    await call('DELETE', `/v1/snapshots/${tag}`).catch(() => undefined);
    await d.stop();
    await rm(root, { recursive: true, force: true });
    assert.deepEqual(await findLeaks(), []);
  });

  test('a terminal session: events stream, input, resize; the process outlives its stream', async () => {
    const s = openStream(d.baseUrl, 'POST', base(), {
      cmd: 'stty size; read a; stty size; echo "got $a"; read b; echo "then $b"',
      pty: { cols: 100, rows: 30 },
      tag: 'term',
    });
    await s.waitFor(/30 100\r\n/);
    const pid = s.lines[0]!.pid!;
    assert.equal(s.lines[0]!.type, 'start');
    const list = await call('GET', base());
    assert.deepEqual(
      (list.json as { processes: { pid: number; tag: string; pty: boolean; cmd: string }[] }).processes.map((p) => [
        p.pid,
        p.tag,
        p.pty,
      ]),
      [[pid, 'term', true]],
    );
    assert.equal((await call('POST', `${base()}/${pid}/resize`, { cols: 120, rows: 40 })).status, 204);
    assert.equal(
      (await call('POST', `${base()}/${pid}/input`, { data: Buffer.from('one\n').toString('base64') })).status,
      204,
    );
    await s.waitFor(/40 120\r\ngot one\r\n/);
    s.close(); // the client goes away; the process must not
    await s.end().catch(() => undefined);
    const again = openStream(d.baseUrl, 'GET', `${base()}/${pid}/events`);
    await new Promise((r) => setTimeout(r, 300));
    await call('POST', `${base()}/${pid}/input`, { data: Buffer.from('two\n').toString('base64') });
    const end = await again.end();
    assert.match(again.out, /then two\r\n$/);
    assert.deepEqual([end.type, end.exit_code, end.timed_out], ['end', 0, false]);
  });

  test('stdin and close-input; signal; errors for unknown pids and the wrong kind of process', async () => {
    const s = openStream(d.baseUrl, 'POST', base(), { args: ['cat'], stdin: true });
    while (s.lines.length === 0) await new Promise((r) => setTimeout(r, 20));
    const pid = s.lines[0]!.pid!;
    const resize = await call('POST', `${base()}/${pid}/resize`, { cols: 80, rows: 24 });
    assert.deepEqual([resize.status, errorCode(resize)], [409, 'invalid_state']);
    await call('POST', `${base()}/${pid}/input`, { data: Buffer.from('piped\n').toString('base64') });
    assert.equal((await call('POST', `${base()}/${pid}/close-input`)).status, 204);
    const end = await s.end();
    assert.equal(s.out, 'piped\n');
    assert.deepEqual([end.type, end.exit_code], ['end', 0]);
    assert.ok(s.lines.slice(1, -1).every((l) => l.type === 'stdout'));

    const sleeper = openStream(d.baseUrl, 'POST', base(), { args: ['sleep', '300'] });
    while (sleeper.lines.length === 0) await new Promise((r) => setTimeout(r, 20));
    const input = await call('POST', `${base()}/${sleeper.lines[0]!.pid!}/input`, { data: 'eA==' });
    assert.deepEqual([input.status, errorCode(input)], [409, 'invalid_state']);
    await call('POST', `${base()}/${sleeper.lines[0]!.pid!}/signal`, { signal: 'SIGTERM' });
    assert.equal((await sleeper.end()).signal, 'SIGTERM');

    for (const path of [`${base()}/4242424/input`, `${base()}/9999999999/signal`]) {
      const r = await call('POST', path, path.endsWith('input') ? { data: 'eA==' } : { signal: 'SIGKILL' });
      assert.deepEqual([r.status, errorCode(r)], [404, 'not_found'], path);
    }
    assert.equal((await call('GET', `${base()}/4242424/events`)).status, 404);
    const bad = await call('POST', base(), { args: ['true'], pty: { cols: 0, rows: 24 } });
    assert.deepEqual([bad.status, errorCode(bad)], [400, 'invalid_argument']);
    const missing = await call('POST', base(), { args: ['/no/such/program'] });
    assert.deepEqual([missing.status, errorCode(missing)], [404, 'not_found']);
    assert.deepEqual((await call('GET', base())).json, { processes: [] });
  });
});
