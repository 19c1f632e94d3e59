/**
 * Looks a hostname up the way a connect would (getaddrinfo, through dns.lookup), for the
 * checks that must see every address a name can lead to: the operator's admission and the
 * dataplane's check before each NBD connect.
 */
import { lookup } from 'node:dns/promises';
import { canonicalIp } from './ip.ts';

export class HostLookupError extends Error {
  readonly code: string;
  constructor(host: string, code: string, options?: { cause?: unknown }) {
    super(`${host}: ${code}`, options);
    this.name = 'HostLookupError';
    this.code = code;
  }
}

/** Every address `host` resolves to, canonical, without duplicates, in resolver order. */
export async function lookupAddresses(host: string, timeoutMs = 5000): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const answers = await Promise.race([
      lookup(host, { all: true, verbatim: true }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new HostLookupError(host, 'ETIMEOUT')), timeoutMs);
      }),
    ]);
    const out: string[] = [];
    for (const a of answers) {
      const ip = canonicalIp(a.address);
      if (ip !== null && !out.includes(ip)) out.push(ip);
    }
    return out;
  } catch (err) {
    if (err instanceof HostLookupError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? 'ELOOKUP';
    throw new HostLookupError(host, code, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
