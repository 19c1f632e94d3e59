/**
 * Which versions of each rendered shard hold which config, so the Ready condition can tell
 * whether the shard version a node has applied contains a client's current config.
 *
 * resourceVersions are opaque (Kubernetes forbids comparing them as numbers), so the order
 * of a shard's versions is the order this process saw them: its own writes and the
 * informer's events, which for one object arrive in the order the API server stored them.
 * For each data key the history keeps the first version at which its current text
 * appeared: every later version holds the same text until the key changes again. A
 * version the history never saw (older than this process, or evicted) is taken as not
 * containing anything, which only delays Ready until the node applies a newer one.
 *
 * Bounded: at most MAX_VERSIONS versions per shard; the key texts are the ConfigMap's own
 * strings, shared with the informer's cache.
 */

/** Versions remembered per shard: a node further behind than this counts as not serving. */
export const MAX_VERSIONS = 256;

interface ShardVersions {
  /** resourceVersion → its place in the order seen. */
  order: Map<string, number>;
  next: number;
  /** data key → its current text and the first version (order) holding it. */
  keys: Map<string, { text: string; since: number }>;
}

/** What Ready asks of the history (ready.ts). */
export interface ShardVersionLookup {
  /** Whether version `resourceVersion` of `shard` holds `key` with exactly `text`. */
  contains(shard: string, resourceVersion: string, key: string, text: string): boolean;
}

export class ShardHistory implements ShardVersionLookup {
  private readonly shards = new Map<string, ShardVersions>();

  /** Records a version of a shard (seen by the informer, or returned by our own write). */
  observe(
    name: string,
    resourceVersion: string,
    data: Readonly<Record<string, string>> = {},
  ): void {
    if (!resourceVersion) return;
    let s = this.shards.get(name);
    if (!s) {
      s = { order: new Map(), next: 0, keys: new Map() };
      this.shards.set(name, s);
    }
    if (s.order.has(resourceVersion)) return;
    const seq = s.next++;
    s.order.set(resourceVersion, seq);
    if (s.order.size > MAX_VERSIONS) s.order.delete(s.order.keys().next().value!);
    for (const [key, text] of Object.entries(data)) {
      const current = s.keys.get(key);
      if (!current || current.text !== text) s.keys.set(key, { text, since: seq });
    }
    for (const key of s.keys.keys()) if (!Object.hasOwn(data, key)) s.keys.delete(key);
  }

  /** A deleted shard: a re-created one starts a new history. */
  forget(name: string): void {
    this.shards.delete(name);
  }

  contains(shard: string, resourceVersion: string, key: string, text: string): boolean {
    const s = this.shards.get(shard);
    const current = s?.keys.get(key);
    if (!s || !current || current.text !== text) return false;
    const seq = s.order.get(resourceVersion);
    return seq !== undefined && seq >= current.since;
  }
}
