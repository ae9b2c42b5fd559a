// Where a spawn goes: best of K. The eligible nodes are those up, offering every isolation
// feature the spawn asks for, with room for n more sandboxes under their --max-sandboxes. If
// some eligible node already holds the snapshot, the choice is among those (no transfer);
// otherwise among all eligible ones, and the chosen node pulls the snapshot first. K of the
// pool are drawn at random and the one with the most room wins (free sandbox slots as a share
// of its cap, then available memory): random sampling keeps concurrent gateways from all
// piling onto the same "best" node, and K > 1 avoids the bad luck of one random pick.
import { ForkdError } from '../lib/errors.js';

export interface Candidate {
  id: string;
  up: boolean;
  active: number;
  max: number;
  /** Spawns this gateway has sent there that have not answered yet. */
  pending: number;
  availableBytes: number;
  snapshots: readonly string[];
  features: Readonly<Record<string, boolean>>;
}

export interface PlacementRequest {
  tag: string;
  n: number;
  features: readonly string[];
  k: number;
}

export interface Placement {
  target: string;
  /** A node that holds the snapshot, when the target must pull it first. */
  source: string | undefined;
}

export function freeSlots(c: Candidate): number {
  return c.max - c.active - c.pending;
}

/** Higher is better: share of the cap still free, then memory. */
export function compareRoom(a: Candidate, b: Candidate): number {
  const share = (c: Candidate): number => freeSlots(c) / Math.max(1, c.max);
  return share(b) - share(a) || b.availableBytes - a.availableBytes;
}

/** K distinct random members of `pool` (all of it when K >= its size). */
export function sample<T>(pool: readonly T[], k: number, random: () => number = Math.random): T[] {
  const copy = [...pool];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, Math.max(1, k));
}

/** The pool to draw from, and a source to pull from when the pool does not hold the snapshot. */
export function placementPool(
  nodes: readonly Candidate[],
  req: Omit<PlacementRequest, 'k'>,
): { pool: Candidate[]; holders: boolean; source: string | undefined } {
  const up = nodes.filter((c) => c.up);
  if (up.length === 0) throw new ForkdError('unavailable', 'no node daemon is up; retry shortly');
  const holding = up.filter((c) => c.snapshots.includes(req.tag));
  if (holding.length === 0)
    throw new ForkdError('not_found', `snapshot ${req.tag} not found on any of the ${up.length} node(s) up`);
  const capable = up.filter((c) => req.features.every((f) => c.features[f] === true));
  if (capable.length === 0)
    throw new ForkdError(
      'feature_unavailable',
      `no node up offers ${req.features.join(', ')}; see GET /v1/capabilities on the nodes`,
      { details: { features: [...req.features] } },
    );
  const eligible = capable.filter((c) => freeSlots(c) >= req.n);
  if (eligible.length === 0)
    throw new ForkdError(
      'busy',
      `no node up has room for ${req.n} more sandbox(es) under its --max-sandboxes; delete some first`,
    );
  const holders = eligible.filter((c) => c.snapshots.includes(req.tag));
  if (holders.length > 0) return { pool: holders, holders: true, source: undefined };
  // Pull from the holder with the most room (it is about to serve a pack).
  const source = [...holding].sort(compareRoom)[0]!.id;
  return { pool: eligible, holders: false, source };
}

/** Best of K from already-fresh candidates (see placementPool). */
export function bestOf(candidates: readonly Candidate[]): Candidate {
  return [...candidates].sort(compareRoom)[0]!;
}

/** The whole choice on the information at hand (the gateway refreshes the K first: see gateway.ts). */
export function place(nodes: readonly Candidate[], req: PlacementRequest, random?: () => number): Placement {
  const { pool, holders, source } = placementPool(nodes, req);
  const best = bestOf(sample(pool, req.k, random));
  return { target: best.id, source: holders ? undefined : source };
}
