// Extract the ELF vmlinux from an x86 bzImage. QEMU's microvm boots an ELF with a PVH note
// directly (x-option-roms=off); booting the bzImage that way hangs (QEMU-NOTES "Guest kernel").
// Boot protocol header: setup_sects at 0x1f1, payload_offset/payload_length at 0x248/0x24c,
// both relative to the start of the protected-mode code at (setup_sects + 1) * 512.
import { spawn } from 'node:child_process';
import { ForkdError } from '../lib/errors.js';

export type PayloadCompression = 'lz4' | 'gzip' | 'zstd' | 'xz';

export interface BzPayload {
  compression: PayloadCompression;
  data: Buffer;
}

export function locatePayload(bz: Buffer): BzPayload {
  if (bz.length < 0x260 || bz.toString('latin1', 0x202, 0x206) !== 'HdrS') {
    throw new ForkdError('host_error', 'not a bzImage: the "HdrS" boot header magic is missing');
  }
  const setupSects = bz[0x1f1] || 4; // 0 means 4 (boot protocol)
  const offset = bz.readUInt32LE(0x248);
  const length = bz.readUInt32LE(0x24c);
  const start = (setupSects + 1) * 512 + offset;
  if (start + length > bz.length || length === 0) {
    throw new ForkdError(
      'host_error',
      `bzImage payload out of range (start ${start}, length ${length}, file ${bz.length})`,
    );
  }
  const data = bz.subarray(start, start + length);
  return { compression: detectCompression(data), data };
}

export function detectCompression(data: Buffer): PayloadCompression {
  const magic = data.subarray(0, 6).toString('hex');
  if (magic.startsWith('02214c18')) return 'lz4'; // LZ4 legacy frame, used by Debian's cloud kernel
  if (magic.startsWith('1f8b')) return 'gzip';
  if (magic.startsWith('28b52ffd')) return 'zstd';
  if (magic.startsWith('fd377a585a00')) return 'xz';
  throw new ForkdError('host_error', `unknown bzImage payload compression (magic ${magic})`);
}

const DECOMPRESSORS: Record<PayloadCompression, string[]> = {
  lz4: ['lz4', '-dc'],
  gzip: ['gzip', '-dc'],
  zstd: ['zstd', '-dc'],
  xz: ['xz', '-dc'],
};

/** Decompress the payload with the matching Debian tool; returns the ELF bytes. */
export async function extractVmlinux(bz: Buffer): Promise<Buffer> {
  const { compression, data } = locatePayload(bz);
  const [cmd, ...args] = DECOMPRESSORS[compression];
  const out = await new Promise<Buffer>((resolve, reject) => {
    const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', (e) =>
      reject(new ForkdError('host_error', `cannot run ${cmd}: ${e.message} (install it: forkd setup)`)),
    );
    child.once('close', (code) => {
      const buf = Buffer.concat(chunks);
      // lz4/gzip complain about trailing bytes after the stream; the ELF is complete anyway.
      if (buf.length > 0 && isElf(buf)) resolve(buf);
      else reject(new ForkdError('host_error', `${cmd} failed (exit ${code}): ${stderr.trim()}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(data);
  });
  return out;
}

export function isElf(buf: Buffer): boolean {
  return buf.length > 4 && buf.readUInt32BE(0) === 0x7f454c46;
}
