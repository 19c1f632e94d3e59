/**
 * Which worker serves a client. Everything that serves one client lives in one worker —
 * its view (sources), its NBD disk session, its transfers — so the choice is fixed for as
 * long as the client has a config:
 * - a client with a config (an NBD disk) is assigned, when its config appears, to the
 *   worker holding the fewest configured clients. Each worker may hold its share of
 *   --max-sessions, so the disks must be spread evenly, not as evenly as a hash happens to
 *   fall (500 disks hashed over 2 workers put 262 on one, past its share of 258);
 * - any other address goes by a hash of its canonical address (the key the disk registry
 *   uses too) from a per-process random seed, which keeps a spoofer from aiming a flood at
 *   the worker of a chosen client (the pending pool is global anyway: admission lives on
 *   the main thread).
 */
import { randomInt } from 'node:crypto';
import { canonicalIp } from '../../../common/src/nbd-config.ts';

/** The key a client is routed by: its canonical address (no zone), as the views use it. */
export function routingKeyOf(address: string): string {
  return canonicalIp(address) ?? address;
}

export class ClientRouting {
  /** Configured clients (bounded by the configs) and the worker each was given. */
  private readonly assigned = new Map<string, number>();
  private readonly configured: number[];

  constructor(
    readonly workers: number,
    private readonly seed: number = randomInt(0x7fffffff),
  ) {
    if (!Number.isInteger(workers) || workers < 1) throw new RangeError('workers must be >= 1');
    this.configured = new Array<number>(workers).fill(0);
  }

  /** The worker (0 … workers-1) serving the client at `address`. */
  workerOf(address: string): number {
    const key = routingKeyOf(address);
    return this.assigned.get(key) ?? this.hashed(key);
  }

  /**
   * A client's config appeared: its worker, the least loaded one (ties: the one its hash
   * names, then the next), kept until unassign(). A client already assigned keeps its own.
   */
  assign(address: string): number {
    const key = routingKeyOf(address);
    const had = this.assigned.get(key);
    if (had !== undefined) return had;
    const least = Math.min(...this.configured);
    const start = this.hashed(key);
    let worker = start;
    for (let i = 0; i < this.workers; i++) {
      worker = (start + i) % this.workers;
      if (this.configured[worker] === least) break;
    }
    this.assigned.set(key, worker);
    this.configured[worker]! += 1;
    return worker;
  }

  /** A client's config went away: it is routed by its hash again. */
  unassign(address: string): void {
    const key = routingKeyOf(address);
    const had = this.assigned.get(key);
    if (had === undefined) return;
    this.assigned.delete(key);
    this.configured[had]! -= 1;
  }

  /** Configured clients per worker. */
  get load(): readonly number[] {
    return this.configured;
  }

  private hashed(key: string): number {
    return fnv1a(key, this.seed) % this.workers;
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
