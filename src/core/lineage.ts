// Snapshot lineage through `parentTag`: a snapshot's ancestors (root first) and dependents
// (direct children). Pure functions over a tag -> parentTag map, cycle-safe and depth-bounded
// (parentTag comes from files on disk, and packs bring snapshots made elsewhere).
export const MAX_LINEAGE_DEPTH = 64;

export type ParentMap = ReadonlyMap<string, string | null>;

/** Root first, direct parent last. Stops at a missing parent, a cycle or the depth bound. */
export function ancestorsOf(tag: string, parentOf: ParentMap): string[] {
  const out: string[] = [];
  const seen = new Set([tag]);
  let t = parentOf.get(tag) ?? null;
  while (t !== null && !seen.has(t) && out.length < MAX_LINEAGE_DEPTH) {
    out.push(t);
    seen.add(t);
    t = parentOf.get(t) ?? null;
  }
  return out.reverse();
}

/** Snapshots whose parentTag is `tag`, sorted. */
export function dependentsOf(tag: string, parentOf: ParentMap): string[] {
  return [...parentOf]
    .filter(([t, p]) => p === tag && t !== tag)
    .map(([t]) => t)
    .sort();
}

/**
 * Order tags for removal so no snapshot is removed while another tag in the same batch still
 * names it as parent (children first). Tags outside the batch are not considered.
 */
export function removalOrder(tags: readonly string[], parentOf: ParentMap): string[] {
  const batch = new Set(tags);
  const depth = (t: string): number => ancestorsOf(t, parentOf).filter((a) => batch.has(a)).length;
  return [...batch].sort((a, b) => depth(b) - depth(a));
}
