/**
 * Which worker serves a client. Everything that serves one client lives in one worker —
 * its view (sources), its NBD disk session, its transfers — so the choice is a pure
 * function of the client's canonical address, the key the disk registry uses too, fixed
 * for the life of the process. A per-process random seed keeps a spoofer from aiming a
 * flood at the worker of a chosen client (the pending pool is global anyway: admission
 * lives on the main thread).
 */
import { randomInt } from 'node:crypto';
import { canonicalIp } from '../../../common/src/nbd-config.ts';

/** The key a client is routed by: its canonical address (no zone), as the views use it. */
export function routingKeyOf(address: string): string {
  return canonicalIp(address) ?? address;
}

export class ClientRouting {
  constructor(
    readonly workers: number,
    private readonly seed: number = randomInt(0x7fffffff),
  ) {
    if (!Number.isInteger(workers) || workers < 1) throw new RangeError('workers must be >= 1');
  }

  /** The worker (0 … workers-1) serving the client at `address`. */
  workerOf(address: string): number {
    return fnv1a(routingKeyOf(address), this.seed) % this.workers;
  }
}

/** FNV-1a over the UTF-16 code units, from a seeded basis: cheap, well spread on addresses. */
function fnv1a(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche (murmur3 fmix32): neighbouring addresses land on different workers.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}
