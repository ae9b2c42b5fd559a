// envd's HTTP routes: GET /files (download), POST /files (upload: multipart/form-data with one
// `file` part per file, its filename the path, as the SDK sends by default; or the raw bytes as
// application/octet-stream, optionally gzip-encoded) and GET /health. Uploads are buffered
// whole and bounded; a file's parent directories are made first, as envd does.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { posix } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { LiveSandbox } from '../../core/controller/live.js';
import { ForkdError, messageOf } from '../../lib/errors.js';
import { FILE_BODY_LIMIT } from '../http.js';
import { readBounded } from './body.js';
import { sandboxPath } from './filesystem-service.js';
import { sendJson } from './errors.js';

function pathParam(query: URLSearchParams, required: boolean): string | undefined {
  const raw = query.get('path') ?? undefined;
  if (raw === undefined && !required) return undefined;
  try {
    return sandboxPath(raw);
  } catch (err) {
    throw new ForkdError('invalid_argument', messageOf(err));
  }
}

export async function downloadFile(
  live: LiveSandbox,
  query: URLSearchParams,
  res: ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  const path = pathParam(query, true)!;
  const bytes = await live.agent.files.read(path, { signal });
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Content-Length', bytes.length);
  res.setHeader('Content-Disposition', `attachment; filename=${JSON.stringify(posix.basename(path))}`);
  res.setHeader('Cache-Control', 'no-store');
  res.end(bytes);
}

export async function uploadFiles(
  live: LiveSandbox,
  query: URLSearchParams,
  req: IncomingMessage,
  res: ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  const type = String(req.headers['content-type'] ?? '').toLowerCase();
  const body = await readBounded(req, FILE_BODY_LIMIT);
  const files: { path: string; data: Buffer }[] = [];
  if (type.startsWith('multipart/form-data')) {
    let form: FormData;
    try {
      form = await new Response(body, { headers: { 'content-type': type } }).formData();
    } catch (err) {
      throw new ForkdError('invalid_argument', `the multipart body does not parse: ${messageOf(err)}`);
    }
    const given = pathParam(query, false);
    for (const part of form.getAll('file')) {
      if (typeof part === 'string') throw new ForkdError('invalid_argument', 'each `file` part must be a file');
      const path = given ?? sandboxPath(part.name);
      files.push({ path, data: Buffer.from(await part.arrayBuffer()) });
    }
    if (files.length === 0) throw new ForkdError('invalid_argument', 'the multipart body has no `file` part');
  } else if (type.startsWith('application/octet-stream')) {
    const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
    let data = body;
    if (encoding === 'gzip') {
      try {
        data = gunzipSync(body, { maxOutputLength: FILE_BODY_LIMIT });
      } catch (err) {
        throw new ForkdError(
          'invalid_argument',
          `the gzip body does not decompress (or is over ${FILE_BODY_LIMIT} bytes): ${messageOf(err)}`,
        );
      }
    } else if (encoding !== 'identity') {
      throw new ForkdError(
        'unsupported_media_type',
        `Content-Encoding ${encoding.slice(0, 40)} is not supported (gzip is)`,
      );
    }
    files.push({ path: pathParam(query, true)!, data });
  } else {
    throw new ForkdError('unsupported_media_type', 'upload as multipart/form-data or application/octet-stream');
  }
  const written = [];
  for (const f of files) {
    const dir = posix.dirname(f.path);
    if (dir !== '/') await live.agent.files.mkdir(dir, { signal, parents: true });
    await live.agent.files.write(f.path, f.data, { signal });
    written.push({ name: posix.basename(f.path), type: 'file', path: f.path });
  }
  sendJson(res, 200, written);
}
