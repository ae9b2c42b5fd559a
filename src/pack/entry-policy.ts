// What a pack entry may be: a regular file whose name the manifest declares, exactly once, of
// the declared size — or a directory entry for snapshots/ or snapshots/<declared tag>/, which
// is ignored (forkd makes its own dirs). Everything else is refused with a message naming the
// entry and what is wrong with it. Names are compared as exact strings, never normalized.
import { ForkdError } from '../lib/errors.js';
import type { FileDigest } from '../image/manifest.js';
import { MANIFEST_NAME, type PackManifest } from './manifest.js';
import { TYPE, type TarHeader } from './tar-header.js';

export interface ExpectedFile {
  /** Tag as written in the pack (validated by the manifest parser). */
  tag: string;
  /** One of SNAPSHOT_FILE_NAMES. */
  name: string;
  digest: FileDigest;
}

export type EntryDecision = { kind: 'file'; file: ExpectedFile } | { kind: 'skip-dir' };

const refuse = (entry: string, why: string): ForkdError =>
  new ForkdError('corrupt_snapshot', `pack entry ${JSON.stringify(entry.slice(0, 200))} refused: ${why}`);

export class EntryPolicy {
  readonly #expected = new Map<string, ExpectedFile>();
  readonly #dirs = new Set<string>(['snapshots']);
  readonly #seen = new Set<string>();
  readonly #seenDirs = new Set<string>();

  constructor(manifest: PackManifest) {
    for (const s of manifest.snapshots) {
      this.#dirs.add(`snapshots/${s.tag}`);
      for (const [name, digest] of Object.entries(s.files))
        this.#expected.set(`snapshots/${s.tag}/${name}`, { tag: s.tag, name, digest });
    }
  }

  decide(h: TarHeader): EntryDecision {
    const name = h.name;
    switch (h.typeflag) {
      case TYPE.file:
      case TYPE.dir:
        break;
      case TYPE.symlink:
        throw refuse(name, `it is a symbolic link (to ${JSON.stringify(h.linkname)}); packs hold regular files only`);
      case TYPE.hardlink:
        throw refuse(name, `it is a hard link (to ${JSON.stringify(h.linkname)}); packs hold regular files only`);
      case TYPE.chardev:
      case TYPE.blockdev:
        throw refuse(
          name,
          `it is a ${h.typeflag === TYPE.chardev ? 'character' : 'block'} device node (${h.devmajor}:${h.devminor}); packs hold regular files only`,
        );
      case TYPE.fifo:
        throw refuse(name, 'it is a FIFO; packs hold regular files only');
      default:
        throw refuse(name, `it has tar type ${JSON.stringify(h.typeflag)}; packs hold regular files only`);
    }
    if (name.startsWith('/')) throw refuse(name, 'it is an absolute path');
    if (name.split('/').includes('..')) throw refuse(name, 'it contains a ".." path segment');
    if (h.typeflag === TYPE.dir) {
      const dir = name.replace(/\/$/, '');
      if (!this.#dirs.has(dir))
        throw refuse(name, 'it is a directory outside snapshots/<tag>/ of the tags the manifest declares');
      // Once each, so the number of entries a pack can hold stays bounded by its manifest.
      if (this.#seenDirs.has(dir)) throw refuse(name, 'the same directory appears twice (duplicate entry)');
      this.#seenDirs.add(dir);
      if (h.size !== 0) throw refuse(name, `it is a directory with ${h.size} bytes of data`);
      return { kind: 'skip-dir' };
    }
    if (name === MANIFEST_NAME) throw refuse(name, 'a second manifest.json (duplicate entry)');
    const file = this.#expected.get(name);
    if (!file) throw refuse(name, 'the manifest does not declare this file (undeclared entry)');
    if (this.#seen.has(name)) throw refuse(name, 'it appears twice in the pack (duplicate entry)');
    if (h.size !== file.digest.size)
      throw refuse(name, `it is ${h.size} bytes, but the manifest declares ${file.digest.size} (size differs)`);
    this.#seen.add(name);
    return { kind: 'file', file };
  }

  /** Declared files the pack did not contain. */
  missing(): string[] {
    return [...this.#expected.keys()].filter((n) => !this.#seen.has(n));
  }
}
