/**
 * How many threads serve clients (--workers). `auto`: one on a node of up to 2 CPUs —
 * there the main thread alone already has a core to itself beside the kernel's network
 * work, and measured here 2 workers did not pay for the handing off (docs/performance.md) — and
 * one per CPU above that: the main thread only listens and admits, a small share of a core.
 */
import { availableParallelism } from 'node:os';

export function resolveWorkers(flag: number | 'auto', cpus = availableParallelism()): number {
  if (flag !== 'auto') return flag;
  return cpus <= 2 ? 1 : cpus;
}
