// Hand-made packs for the pack tests: a small valid snapshot (fake memory.bin, vmstate and
// kernel files, with a consistent snapshot.json and manifest) and the means to make it hostile
// entry by entry. Tar bytes come from forkd's own writer (or raw headers); zstd compresses.
import { AGENT_PROTOCOL_VERSION } from '../../src/lib/version.js';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { TarWriter } from '../../src/pack/tar-writer.js';
import { BLOCK, decodeHeader, type HeaderInput } from '../../src/pack/tar-header.js';
import { padOf } from '../../src/pack/tar-reader.js';
import type { PackManifest } from '../../src/pack/manifest.js';

export interface CraftEntry {
  header: HeaderInput;
  body?: Buffer;
}

export interface HostLike {
  qemuVersion: string;
  accel: 'kvm' | 'tcg';
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Tar bytes from entries (forkd's writer), with the end marker unless `end: false`. */
export async function tarBytes(entries: CraftEntry[], opts: { end?: boolean } = {}): Promise<Buffer> {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  });
  const tar = new TarWriter(sink);
  for (const e of entries) await tar.add(e.header, e.body ?? Buffer.alloc(0));
  if (opts.end !== false) await tar.end();
  return Buffer.concat(parts);
}

export function zstd(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('zstd', ['-q', '-c'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`zstd exit ${code}`))));
    child.stdin.end(data);
  });
}

export async function writePackFile(path: string, tar: Buffer): Promise<string> {
  await writeFile(path, await zstd(tar));
  return path;
}

/** A small, valid pack for `tag`: the files a snapshot has, consistent manifest and snapshot.json. */
export function validPack(
  tag: string,
  host: HostLike,
  opts: { parentTag?: string } = {},
): { manifest: PackManifest; files: Map<string, Buffer>; entries: () => CraftEntry[] } {
  const memory = Buffer.alloc(64 * 1024);
  memory.write('guest ram page', 8192);
  memory[memory.length - 1] = 7;
  const files = new Map<string, Buffer>([
    ['memory.bin', memory],
    ['vmstate', Buffer.from('QEVM fake device state\n')],
    ['vmlinux', Buffer.from('fake kernel\n')],
    ['initrd.img', Buffer.from('fake initrd\n')],
  ]);
  const digests = Object.fromEntries([...files].map(([n, b]) => [n, { sha256: sha(b), size: b.length }]));
  const layout = { machine: 'microvm' as const, memMiB: 128, vcpus: 1, rootDisk: false, mac: 'aa:fc:00:00:00:01' };
  const meta = {
    formatVersion: 1,
    tag,
    createdAt: '2026-01-01T00:00:00.000Z',
    forkdVersion: '0.1.0',
    agentProtocol: AGENT_PROTOCOL_VERSION,
    qemuVersion: host.qemuVersion,
    accel: host.accel,
    layout,
    kernelCmdline: 'console=ttyS0',
    image: { name: 'default', id: 'feedface', hasPython: false, pythonPreload: [] },
    files: digests,
    warmup: [],
    parentTag: opts.parentTag ?? null,
    branchedFrom: null,
  };
  const metaBytes = Buffer.from(JSON.stringify(meta, null, 2));
  files.set('snapshot.json', metaBytes);
  const manifest: PackManifest = {
    format: 'forkd-pack',
    formatVersion: 1,
    tag,
    createdAt: '2026-01-01T00:00:00.000Z',
    forkdVersion: '0.1.0',
    snapshots: [
      {
        tag,
        parentTag: opts.parentTag ?? null,
        createdAt: meta.createdAt,
        qemuVersion: host.qemuVersion,
        accel: host.accel,
        layout,
        imageId: 'feedface',
        files: { 'snapshot.json': { sha256: sha(metaBytes), size: metaBytes.length }, ...digests },
      },
    ],
  };
  const entries = (): CraftEntry[] => [manifestEntry(manifest), ...fileEntries(tag, files)];
  return { manifest, files, entries };
}

export function fileEntries(tag: string, files: Map<string, Buffer>): CraftEntry[] {
  return [...files].map(([n, b]) => ({ header: { name: `snapshots/${tag}/${n}`, size: b.length }, body: b }));
}

export function manifestEntry(manifest: unknown): CraftEntry {
  const body = Buffer.from(JSON.stringify(manifest));
  return { header: { name: 'manifest.json', size: body.length }, body };
}

/** Offset of an entry's data in an uncompressed tar file (walks the headers). */
export async function entryDataOffset(tarPath: string, name: string): Promise<number> {
  const fh = await open(tarPath, 'r');
  try {
    let pos = 0;
    const block = Buffer.alloc(BLOCK);
    for (;;) {
      const { bytesRead } = await fh.read(block, 0, BLOCK, pos);
      if (bytesRead < BLOCK) throw new Error(`${name} not found`);
      const h = decodeHeader(block);
      if (h.name === name) return pos + BLOCK;
      pos += BLOCK + h.size + padOf(h.size);
    }
  } finally {
    await fh.close();
  }
}
