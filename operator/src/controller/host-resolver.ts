/**
 * DNS answers for the hostnames in tenants' NBD URLs, for admission. Each name is looked
 * up again once its answer is older than the TTL (the controller renders again after it,
 * so a name that moves into a refused range is caught without any event). A failed
 * lookup keeps the last good answer, so a DNS outage does not un-render clients that were
 * admitted; a name that never resolved is refused until it does.
 */
import type { Logger } from 'pino';
import type { ResolvedHost } from '../../../common/src/bootnetwork-admission.ts';
import { lookupAddresses } from '../../../common/src/resolve-host.ts';

export type LookupFn = (host: string) => Promise<string[]>;

interface Entry {
  answer: ResolvedHost;
  at: number;
}

export class HostResolver {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly o: {
      log: Logger;
      ttlMs: number;
      lookup?: LookupFn;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /**
   * Looks up the names whose answer is missing or stale and forgets names no longer used.
   * True when any answer changed (admission may decide differently).
   */
  async refresh(hosts: ReadonlySet<string>): Promise<boolean> {
    for (const host of this.entries.keys()) if (!hosts.has(host)) this.entries.delete(host);
    const stale = [...hosts].filter((h) => {
      const e = this.entries.get(h);
      return !e || this.now() - e.at >= this.o.ttlMs;
    });
    const lookup = this.o.lookup ?? ((h: string) => lookupAddresses(h));
    const results = await Promise.all(
      stale.map(async (host): Promise<[string, ResolvedHost]> => {
        try {
          return [host, { addresses: (await lookup(host)).sort() }];
        } catch (err) {
          return [host, { error: (err as { code?: string }).code ?? String(err) }];
        }
      }),
    );
    let changed = false;
    for (const [host, answer] of results) {
      const before = this.entries.get(host)?.answer;
      let next = answer;
      if ('error' in answer && before && 'addresses' in before) {
        this.o.log.warn({ host, err: answer.error }, 'Host lookup failed; last answer kept');
        next = before;
      }
      if (JSON.stringify(before) !== JSON.stringify(next)) changed = true;
      this.entries.set(host, { answer: next, at: this.now() });
    }
    return changed;
  }

  get(host: string): ResolvedHost | undefined {
    return this.entries.get(host)?.answer;
  }

  get size(): number {
    return this.entries.size;
  }
}
