/**
 * The Ready condition of BootClients, pure: from where render() put each client's config
 * (its shard, data key and text), the shard versions known to hold it (shard-history.ts)
 * and the live sync sidecars' reports (sync-report.ts, sync-liveness.ts).
 *
 * A BootClient is Ready when every live dataplane node's sidecar has applied a version of
 * its shard that contains its current config, and at least one node is live:
 *   Ready=True  reason Served       "served by N/N nodes"
 *   Ready=False reason Syncing      "served by N/M nodes"            (N < M)
 *   Ready=False reason NoDataplane  "served by 0/0 nodes (no live dataplane node reports)"
 *   Ready=False reason NotRendered  "served by 0/M nodes (not rendered)"
 * A node whose report went stale is taken as dead and counts in neither N nor M.
 */
import type { DesiredCondition } from './render.ts';
import type { ShardVersionLookup } from './shard-history.ts';
import type { SyncReport } from './sync-report.ts';

/** Where render() put a client's config. */
export interface Placement {
  shard: string;
  /** Its data key in the shard (the file name, ':' as '_'). */
  key: string;
  text: string;
}

export type ReadyCondition = DesiredCondition & { type: 'Ready' };

function condition(
  status: 'True' | 'False',
  reason: string,
  served: number,
  nodes: number,
  note = '',
): ReadyCondition {
  return {
    type: 'Ready',
    status,
    reason,
    message: `served by ${served}/${nodes} nodes${note ? ` (${note})` : ''}`,
  };
}

/** One client's Ready condition; `placement` undefined: render did not place its config. */
export function readyCondition(
  placement: Placement | undefined,
  live: readonly SyncReport[],
  history: ShardVersionLookup,
): ReadyCondition {
  const nodes = live.length;
  if (!placement) return condition('False', 'NotRendered', 0, nodes, 'not rendered');
  if (nodes === 0) return condition('False', 'NoDataplane', 0, 0, 'no live dataplane node reports');
  let served = 0;
  for (const r of live) {
    const rv = r.applied.get(placement.shard);
    if (rv !== undefined && history.contains(placement.shard, rv, placement.key, placement.text))
      served++;
  }
  return served === nodes
    ? condition('True', 'Served', served, nodes)
    : condition('False', 'Syncing', served, nodes);
}

/** Ready for every client key, from render's placements (clients without one: NotRendered). */
export function readyConditions(
  keys: Iterable<string>,
  placements: ReadonlyMap<string, Placement>,
  live: readonly SyncReport[],
  history: ShardVersionLookup,
): Map<string, ReadyCondition> {
  const out = new Map<string, ReadyCondition>();
  for (const key of keys) out.set(key, readyCondition(placements.get(key), live, history));
  return out;
}
