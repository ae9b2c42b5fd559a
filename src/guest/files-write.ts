// files.write: the data arrives as upload frames after the request (see frames.ts). It goes to
// a temp file in the target's directory, is checked against the announced size and the
// host's sha256, synced, and renamed over the target: readers see the old file or the new
// one, never a torn write. Any failure or cancel removes the temp file.
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ParamsOf, ResultOf } from '../protocol/index.js';
import { fsError, GuestError } from './errors.js';
import type { RequestContext } from './session.js';

/** An upload that stops arriving is abandoned after this long without data. */
const IDLE_TIMEOUT_MS = 60_000;

export async function writeFileOp(p: ParamsOf<'files.write'>, ctx: RequestContext): Promise<ResultOf<'files.write'>> {
  const upload = ctx.upload;
  if (!upload) throw new GuestError('internal', 'files.write without an upload channel');
  const what = `files.write ${p.path}`;
  const tmp = join(dirname(p.path), `.${basename(p.path)}.forkd-${randomBytes(6).toString('hex')}`);
  const fh = await open(tmp, 'wx', p.mode ?? 0o644).catch((err: unknown) => {
    throw fsError(err, what);
  });
  let renamed = false;
  try {
    const hash = createHash('sha256');
    let size = 0;
    for (;;) {
      const idle = AbortSignal.timeout(IDLE_TIMEOUT_MS);
      const item = await upload.next(AbortSignal.any([ctx.signal, idle])).catch((err: unknown) => {
        if (idle.aborted && !ctx.signal.aborted)
          throw new GuestError('timeout', `${what}: no data for ${IDLE_TIMEOUT_MS} ms`);
        throw err;
      });
      if (!item) throw new GuestError('cancelled', `${what}: upload closed`);
      if (item.kind === 'end') {
        if (size !== p.size) throw new GuestError('bad_request', `${what}: got ${size} bytes, announced ${p.size}`);
        const digest = hash.digest('hex');
        if (digest !== item.sha256)
          throw new GuestError('bad_request', `${what}: sha256 mismatch (got ${digest}, host sent ${item.sha256})`);
        await fh.chmod(p.mode ?? 0o644); // open()'s mode went through the umask
        await fh.datasync();
        await fh.close();
        await rename(tmp, p.path);
        renamed = true;
        return { size, sha256: digest };
      }
      size += item.data.length;
      if (size > p.size) throw new GuestError('too_large', `${what}: more than the announced ${p.size} bytes`);
      hash.update(item.data);
      for (let off = 0; off < item.data.length;) {
        const { bytesWritten } = await fh.write(item.data, off);
        off += bytesWritten;
      }
    }
  } catch (err) {
    throw fsError(err, what);
  } finally {
    if (!renamed) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
    }
  }
}
