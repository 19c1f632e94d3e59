/**
 * dnsmasq as the boot LAN's DHCP server only (DNS and TFTP off): a fixed address per
 * VM MAC and, per host, the boot file its firmware asks for, with next-server set to
 * the dataplane. The same settings are documented for users in docs/dhcp.md.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SERVER_IP, BOOT_SUBNET } from './boot-network.ts';
import type { BootNetwork } from './boot-network.ts';
import type { TrackedProcess } from './processes.ts';

export interface DhcpHost {
  mac: string;
  ip: string;
  /** Boot file for BIOS PXE firmware (and iPXE). */
  biosBootFile: string;
  /** Boot file for x86-64 UEFI firmware (client-arch 7 or 9); default: biosBootFile. */
  efiBootFile?: string;
}

export function dnsmasqArgs(hosts: readonly DhcpHost[], leaseFile: string): string[] {
  const args = [
    '--no-daemon',
    '--port=0', // no DNS
    '--conf-file=/dev/null',
    '--interface=br0',
    '--bind-interfaces',
    `--dhcp-range=${BOOT_SUBNET}.100,${BOOT_SUBNET}.200,255.255.255.0,1h`,
    `--dhcp-leasefile=${leaseFile}`,
    '--pid-file=',
    '--dhcp-authoritative',
    // Router advertisements only (no DHCPv6): see SERVER_IP6.
    '--enable-ra',
    '--dhcp-range=::,constructor:br0,ra-only',
    '--log-dhcp',
    // RFC 4578 client-arch: 7 and 9 are x86-64 UEFI.
    '--dhcp-match=set:efi64,option:client-arch,7',
    '--dhcp-match=set:efi64,option:client-arch,9',
  ];
  hosts.forEach((h, i) => {
    const tag = `host${i}`;
    args.push(`--dhcp-host=${h.mac},set:${tag},${h.ip}`);
    args.push(`--dhcp-boot=tag:${tag},tag:!efi64,${h.biosBootFile},,${SERVER_IP}`);
    args.push(`--dhcp-boot=tag:${tag},tag:efi64,${h.efiBootFile ?? h.biosBootFile},,${SERVER_IP}`);
  });
  return args;
}

/** Starts dnsmasq inside the namespace; resolves once it serves DHCP on the bridge. */
export async function startDhcp(
  net: BootNetwork,
  workDir: string,
  hosts: readonly DhcpHost[],
): Promise<TrackedProcess> {
  const leaseFile = join(workDir, 'dnsmasq.leases');
  await writeFile(leaseFile, '');
  const proc = net.start('dnsmasq', '/usr/sbin/dnsmasq', [
    ...dnsmasqArgs(hosts, leaseFile),
    '--user=root', // the lease file lives in the test's private dir
  ]);
  try {
    await proc.waitForLine((l) => /DHCP, sockets bound exclusively/.test(l.text), 10_000);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}
