/**
 * Who may read /status: it lists every client IP, its NBD server and each disk's state, so
 * by default only loopback clients get it (on a hostNetwork pod that is `kubectl
 * port-forward` or `exec`, or a process on the node). `--status-allow` adds CIDRs, e.g. a
 * management network. The one rule for that boundary (docs/security.md, "Exposure").
 *
 * The remote address of a TCP connection cannot be forged into loopback from outside the
 * node (the kernel drops packets from 127.0.0.0/8 or ::1 arriving on another interface),
 * and an IPv4-mapped address on a dual-stack socket is matched as its IPv4 address.
 */
import { CidrSet, cidrOf } from '../../../common/src/cidr.ts';

export const LOOPBACK_BLOCKS = ['127.0.0.0/8', '::1/128'] as const;

export function statusAccess(allow: CidrSet): (remoteAddress: string | undefined) => boolean {
  const allowed = new CidrSet([...LOOPBACK_BLOCKS.map(cidrOf), ...allow.blocks]);
  return (remoteAddress) => remoteAddress !== undefined && allowed.contains(remoteAddress);
}
