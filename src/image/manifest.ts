// images/<name>/image.json: what an image is made of, with content hashes. Snapshots record
// the image id, so a snapshot is only ever restored with the exact kernel and initrd it saw.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ForkdError, errnoOf } from '../lib/errors.js';
import { assertTag } from '../lib/tag.js';

/** 2: the native agent; `runtimes` (node optional). Images of format 1 carry the Node agent and are refused. */
export const IMAGE_FORMAT_VERSION = 2;

export interface FileDigest {
  sha256: string;
  size: number;
}

export interface ImageManifest {
  formatVersion: number;
  name: string;
  /** sha256 of the build inputs: same inputs, same id. */
  id: string;
  createdAt: string;
  kernel: { release: string; packageVersion: string; sha256: string };
  /** The Node.js in the image (the host's, copied), or null without the `node` runtime. */
  nodeVersion: string | null;
  runtimes: string[];
  packages: string[];
  /** Python modules the agent pre-imports in its warm worker (e.g. numpy). */
  pythonPreload: string[];
  hasPython: boolean;
  rootDisk: boolean;
  files: Record<string, FileDigest>;
}

export function imagesDir(dataDir: string): string {
  return join(dataDir, 'images');
}

export function imageDir(dataDir: string, name: string): string {
  return join(imagesDir(dataDir), assertTag(name, 'image name'));
}

export async function readImageManifest(dataDir: string, name: string): Promise<ImageManifest> {
  const path = join(imageDir(dataDir, name), 'image.json');
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as ImageManifest;
    if (parsed.formatVersion !== IMAGE_FORMAT_VERSION || parsed.name !== name) {
      throw new ForkdError(
        'corrupt_snapshot',
        `image ${name}: ${path} has an unexpected format; rebuild it with: forkd image build --name ${name}`,
      );
    }
    return parsed;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') {
      throw new ForkdError(
        'not_found',
        `image ${name} not found (no ${path}); build it with: forkd image build --name ${name}`,
      );
    }
    if (err instanceof ForkdError) throw err;
    throw new ForkdError('corrupt_snapshot', `image ${name}: cannot read ${path}: ${String(err)}`, { cause: err });
  }
}
