/**
 * How many threads serve clients (--workers). `auto`: one on a node of up to 2 CPUs — there
 * a second worker competes with the kernel's network work for the same cores, and the
 * handing off costs more than it gives (docs/performance.md) — and one per CPU above that:
 * the main thread only listens and admits, a small share of a core.
 */
import { availableParallelism } from 'node:os';

export function resolveWorkers(flag: number | 'auto', cpus = availableParallelism()): number {
  if (flag !== 'auto') return flag;
  return cpus <= 2 ? 1 : cpus;
}
