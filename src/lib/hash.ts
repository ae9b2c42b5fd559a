import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

/** Streamed sha256 of a file (bounded memory whatever its size). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function digestFile(path: string): Promise<{ sha256: string; size: number }> {
  const [sha256, st] = await Promise.all([sha256File(path), stat(path)]);
  return { sha256, size: st.size };
}

export function sha256Of(...parts: (string | Buffer)[]): string {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  return hash.digest('hex');
}
