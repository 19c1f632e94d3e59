/**
 * The canonical text form of IP addresses, in a module of its own so that everything
 * that names addresses (nbd-config.ts, cidr.ts, nbd-target-policy.ts) can import it
 * without importing each other.
 */
import { isIP } from 'node:net';

/**
 * The canonical text form of an IP address, as client directories and config names must
 * be written: IPv4 dotted quad; IPv6 lower-case, compressed (RFC 5952), IPv4-mapped
 * addresses as their IPv4 form, zone index dropped. Null for anything that is not an address.
 */
export function canonicalIp(address: string): string | null {
  const a = address.replace(/%.*$/, '');
  const kind = isIP(a);
  if (kind === 4) {
    const parts = a.split('.').map(Number);
    return parts.join('.');
  }
  if (kind !== 6) return null;
  // Let URL do RFC 5952 compression.
  const host = new URL(`http://[${a}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return host;
}
