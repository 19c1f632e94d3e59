/**
 * Requests the kernel dropped before rtftp saw them: the `drops` column of /proc/net/udp
 * and /proc/net/udp6 for the listening sockets (unconnected, bound to one of the listening
 * addresses and the TFTP port). A listening socket drops a datagram when its receive buffer
 * is full — a boot storm's burst of requests faster than the event loop takes them — and
 * each drop costs a client a retransmission timeout. Linux only; elsewhere: undefined.
 */
import { readFileSync } from 'node:fs';
import { canonicalIp } from '../../../common/src/nbd-config.ts';

/** An address of /proc/net/udp{,6} (hex, 32-bit words in host order: little-endian here). */
export function procAddress(hex: string): string | undefined {
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(word.slice(b, b + 2), 16));
  }
  if (bytes.some((b) => Number.isNaN(b))) return undefined;
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.length !== 16) return undefined;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return canonicalIp(groups.join(':')) ?? undefined;
}

/**
 * Sums the drops of the unconnected sockets bound to `port` on one of `addresses`, from
 * the text of /proc/net/udp and /proc/net/udp6.
 */
export function listenDropsFrom(text: string, port: number, addresses: readonly string[]): number {
  const ours = new Set(addresses.map((a) => canonicalIp(a.replace(/%.*$/, '')) ?? a));
  let drops = 0;
  for (const line of text.split('\n')) {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
    const f = line.trim().split(/\s+/);
    if (f.length < 13 || !/^\d+:$/.test(f[0]!)) continue;
    const [localHex, localPort] = f[1]!.split(':');
    const [remoteHex, remotePort] = f[2]!.split(':');
    if (parseInt(localPort ?? '', 16) !== port || parseInt(remotePort ?? '', 16) !== 0) continue;
    if (!/^0+$/.test(remoteHex ?? '')) continue;
    const local = procAddress(localHex ?? '');
    if (local !== undefined && ours.has(local)) drops += Number(f[12]) || 0;
  }
  return drops;
}

/** The drops of this node's listening sockets now; undefined where /proc/net/udp is not. */
export function readListenDrops(port: number, addresses: readonly string[]): number | undefined {
  let text = '';
  let found = false;
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    try {
      text += readFileSync(file, 'utf8') + '\n';
      found = true;
    } catch {
      // No IPv6 in this kernel, or not Linux.
    }
  }
  return found ? listenDropsFrom(text, port, addresses) : undefined;
}
