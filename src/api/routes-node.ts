// Routes a node daemon offers for many-hosts deployments and for operators: what this daemon
// can isolate with (GET /v1/capabilities), its capacity for a gateway's placement (GET
// /v1/node), and snapshots as pack streams, out (GET .../pack) and in (PUT .../pack, verified
// against a sha256 and then through every check of `forkd unpack`).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { errnoOf, ForkdError, messageOf } from '../lib/errors.js';
import { FEATURES, hostAvailableBytes, type Feature, type HostCapabilities } from '../core/api-surface.js';
import type { CoreContext } from '../core/context.js';
import type { SnapshotService } from '../core/controller/snapshots.js';
import type { SandboxManager } from '../core/controller/sandboxes.js';
import { PACK_EXTENSION } from '../pack/manifest.js';
import { packToFile } from '../pack/pack.js';
import { ownedTempName, trackTempPath } from '../pack/temp-paths.js';
import { DEFAULT_MAX_UNPACK_BYTES, unpackFile } from '../pack/unpack.js';
import type { Handler } from './http.js';
import { STREAM_TYPE } from './validation.js';

export const PACK_SHA256_HEADER = 'X-Forkd-Pack-Sha256';

export interface NodeFacts {
  name: string;
  key: string;
  maxSandboxes: number;
  version: string;
  qemu: string;
  accel: 'kvm' | 'tcg';
}

export interface NodeCore {
  ctx: CoreContext;
  sandboxes: SandboxManager;
  snapshots: SnapshotService;
  capabilities: HostCapabilities | undefined;
  node: NodeFacts | undefined;
  activeSandboxes: () => number;
}

export function capabilitiesJson(c: HostCapabilities): unknown {
  return {
    root: c.root,
    effective: c.effective,
    missing: c.missing,
    cgroup_mode: c.cgroupMode,
    features: c.features,
    probed_at: c.probedAt,
  };
}

export function nodeHandlers(core: NodeCore): Record<string, Handler> {
  return {
    capabilities: () => {
      if (!core.capabilities) throw new ForkdError('unavailable', 'this daemon did not probe its capabilities');
      return Promise.resolve({ status: 200, json: capabilitiesJson(core.capabilities) });
    },
    nodeInfo: async () => {
      const node = core.node;
      if (!node) throw new ForkdError('unavailable', 'this daemon has no node identity');
      const features = Object.fromEntries(
        FEATURES.map((f: Feature) => [f, core.capabilities?.features[f].available ?? false]),
      );
      const snapshots = (await core.snapshots.list()).filter((s) => s.status === 'ready').map((s) => s.tag);
      return {
        status: 200,
        json: {
          name: node.name,
          key: node.key,
          version: node.version,
          accel: node.accel,
          qemu: node.qemu,
          cpus: Math.max(1, cpus().length),
          memory: { total_bytes: totalmem(), available_bytes: await hostAvailableBytes().catch(() => 0) }, // unreadable /proc/meminfo: report no free memory, so a gateway places nothing here
          sandboxes: { active: core.activeSandboxes(), max: node.maxSandboxes },
          snapshots,
          features,
        },
      };
    },
    getSnapshotPack: async ({ params, res, signal }) => {
      const tag = params.tag!;
      const view = await core.snapshots.get(tag);
      if (view.status !== 'ready')
        throw new ForkdError('invalid_state', `snapshot ${tag} is ${view.status}, not ready; it cannot be packed`, {
          details: { status: view.status },
        });
      // Packed to a temp file first: the answer then carries its length and sha256, which the
      // receiving node checks before it unpacks a byte.
      const temp = await tempPack(core.ctx, 'serve');
      const untrack = trackTempPath(temp);
      try {
        await packToFile(core.ctx.paths, { tag, output: temp, force: true });
        const { size } = await stat(temp);
        const sha256 = await fileSha256(temp);
        signal.throwIfAborted();
        res.statusCode = 200;
        res.setHeader('Content-Type', STREAM_TYPE);
        res.setHeader('Content-Length', String(size));
        res.setHeader(PACK_SHA256_HEADER, sha256);
        res.setHeader('Cache-Control', 'no-store');
        await pipeline(createReadStream(temp, { highWaterMark: 1 << 20 }), res).catch((err: unknown) => {
          core.ctx.logger.warn('pack stream ended early', { tag, error: messageOf(err) });
          res.destroy();
        });
        return { streamed: true };
      } finally {
        await rm(temp, { force: true });
        untrack();
      }
    },
    putSnapshotPack: async ({ params, query, body }) => {
      const tag = params.tag!;
      const req = body as IncomingMessage;
      const declared = Number(req.headers['content-length'] ?? NaN);
      if (declared > DEFAULT_MAX_UNPACK_BYTES)
        throw new ForkdError('payload_too_large', `pack of ${declared} bytes is over ${DEFAULT_MAX_UNPACK_BYTES}`);
      const temp = await tempPack(core.ctx, 'recv');
      const untrack = trackTempPath(temp);
      try {
        const got = await receive(req, temp, DEFAULT_MAX_UNPACK_BYTES);
        if (got.sha256 !== query.sha256)
          throw new ForkdError(
            'corrupt_snapshot',
            `the pack received for ${tag} has sha256 ${got.sha256}, not the expected ${query.sha256!}; nothing was unpacked`,
          );
        const r = await unpackFile(core.ctx, { file: temp, tag, force: query.force === 'true' });
        core.ctx.logger.info('snapshot received as a pack', { tag, bytes: got.bytes, sha256: got.sha256 });
        return {
          status: 201,
          json: {
            tag,
            sha256: got.sha256,
            bytes: got.bytes,
            snapshots: r.snapshots.map((s) => ({ tag: s.tag, stored_as: s.storedAs, action: s.action })),
          },
        };
      } finally {
        await rm(temp, { force: true });
        untrack();
      }
    },
  };
}

async function tempPack(ctx: CoreContext, kind: 'recv' | 'serve'): Promise<string> {
  await mkdir(ctx.paths.snapshotsDir, { recursive: true, mode: 0o755 });
  return join(ctx.paths.snapshotsDir, `${await ownedTempName(kind)}${PACK_EXTENSION}`);
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The request body into `path`, hashed as it arrives, refused past `limit` bytes. */
async function receive(req: IncomingMessage, path: string, limit: number): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const fh = await open(path, 'w', 0o600);
  try {
    // Not pipeline(req, ...): a failing write (a full disk) made it destroy the request, so the
    // client got a connection reset instead of the answer (found by the fault suite). The
    // iterator leaves the request open; sendError answers, then drains the rest of the body.
    for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > limit) throw new ForkdError('payload_too_large', `pack over ${limit} bytes`);
      hash.update(chunk);
      for (let off = 0; off < chunk.length;) off += (await fh.write(chunk, off)).bytesWritten;
    }
  } catch (err) {
    if (err instanceof ForkdError) throw err;
    // The daemon's disk, not the client: 507, as unpack says when the files do not fit.
    if (errnoOf(err) === 'ENOSPC' || errnoOf(err) === 'EDQUOT')
      throw new ForkdError(
        'insufficient_storage',
        `no space left in ${dirname(path)} after receiving ${bytes} bytes of the pack; free some space and retry`,
        { cause: err },
      );
    throw new ForkdError('unavailable', `the pack upload broke off after ${bytes} bytes: ${messageOf(err)}`);
  } finally {
    await fh.close();
  }
  return { sha256: hash.digest('hex'), bytes };
}
