/**
 * A FAT cluster chain as runs of consecutive clusters, followed lazily. Finding the
 * cluster of a file position and spotting a chain that comes back on itself (a loop,
 * from a damaged or hostile FAT) both cost O(log runs).
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

export class ClusterChain {
  private readonly byIndex: Run[];
  private readonly byCluster: Run[];
  ended = false;

  constructor(first: number) {
    const run = { index: 0, cluster: first, count: 1 };
    this.byIndex = [run];
    this.byCluster = [run];
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
    const hit = floor(this.byCluster, cluster, (r) => r.cluster);
    check(!hit || cluster >= hit.cluster + hit.count, `FAT chain loops back to cluster ${cluster}`);
    const last = this.byIndex[this.byIndex.length - 1]!;
    if (cluster === last.cluster + last.count) {
      last.count++;
      return;
    }
    const run = { index: last.index + last.count, cluster, count: 1 };
    this.byIndex.push(run);
    const after = this.byCluster.findIndex((r) => r.cluster > cluster);
    this.byCluster.splice(after < 0 ? this.byCluster.length : after, 0, run);
  }
}
