/**
 * A FAT cluster chain as runs of consecutive clusters, followed lazily. Finding the
 * cluster of a file position costs O(log runs); appending a cluster, with the check that
 * the chain does not come back on itself (a loop, from a damaged or hostile FAT), costs
 * O(1): building a chain is linear however fragmented it is. (A sorted array with an
 * insertion per run made it quadratic: 40k scattered clusters took 621 ms.)
 */
import { check } from './errors.ts';

interface Run {
  /** Index in the file (in clusters) of the run's first cluster. */
  index: number;
  cluster: number;
  count: number;
}

/** Last element whose key is ≤ value in a sorted array, or undefined. */
function floor<T>(items: readonly T[], value: number, key: (t: T) => number): T | undefined {
  let lo = 0;
  let hi = items.length - 1;
  let found: T | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const item = items[mid]!;
    if (key(item) <= value) {
      found = item;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** log2 of the clusters one bucket of {@link RunsByCluster} spans. */
const BUCKET_BITS = 6;

/**
 * Which run holds cluster c? Runs are registered in every bucket of 64 clusters they
 * touch, so a lookup scans one bucket: at most 64 runs (they are disjoint), usually one.
 * A run of n clusters takes n / 64 + 2 registrations: linear in all.
 */
class RunsByCluster {
  private readonly buckets = new Map<number, Run[]>();

  /** Registers `run` as now also holding `cluster` (a new run, or the last one grown by one). */
  add(run: Run, cluster: number): void {
    const key = Math.floor(cluster / 2 ** BUCKET_BITS);
    const bucket = this.buckets.get(key);
    // A run only grows while it is the newest one: if it is in this bucket, it is last.
    if (!bucket) this.buckets.set(key, [run]);
    else if (bucket[bucket.length - 1] !== run) bucket.push(run);
  }

  holding(cluster: number): Run | undefined {
    const bucket = this.buckets.get(Math.floor(cluster / 2 ** BUCKET_BITS));
    return bucket?.find((r) => cluster >= r.cluster && cluster < r.cluster + r.count);
  }
}

export class ClusterChain {
  private readonly byIndex: Run[];
  private readonly byCluster = new RunsByCluster();
  ended = false;

  constructor(first: number) {
    const run = { index: 0, cluster: first, count: 1 };
    this.byIndex = [run];
    this.byCluster.add(run, first);
  }

  /** Clusters known so far. */
  get length(): number {
    const last = this.byIndex[this.byIndex.length - 1]!;
    return last.index + last.count;
  }

  get lastCluster(): number {
    const last = this.byIndex[this.byIndex.length - 1]!;
    return last.cluster + last.count - 1;
  }

  /** The cluster at chain position `index`, if already known. */
  at(index: number): number | undefined {
    const run = floor(this.byIndex, index, (r) => r.index);
    return run && index < run.index + run.count ? run.cluster + (index - run.index) : undefined;
  }

  /**
   * Known clusters from position `index` on that follow each other on disk (0 when
   * `index` is not known yet): one disk read covers them all.
   */
  runLength(index: number): number {
    const run = floor(this.byIndex, index, (r) => r.index);
    return run && index < run.index + run.count ? run.index + run.count - index : 0;
  }

  /** Appends the next cluster of the chain; a cluster already in it is a loop. */
  append(cluster: number): void {
    check(!this.byCluster.holding(cluster), `FAT chain loops back to cluster ${cluster}`);
    const last = this.byIndex[this.byIndex.length - 1]!;
    if (cluster === last.cluster + last.count) {
      last.count++;
      this.byCluster.add(last, cluster);
      return;
    }
    const run = { index: last.index + last.count, cluster, count: 1 };
    this.byIndex.push(run);
    this.byCluster.add(run, cluster);
  }
}
