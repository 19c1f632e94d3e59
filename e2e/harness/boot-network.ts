/**
 * The network a PXE test boots on: one network namespace made for the test, holding a
 * bridge with the server address and one tap device per virtual machine. Every
 * address lives inside that namespace, so no packet ever leaves it; deleting the
 * namespace removes the bridge and taps with it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { HarnessError, startProcess } from './processes.ts';
import type { StartOptions, TrackedProcess } from './processes.ts';

/** The server's side of the boot LAN; clients get .10 upwards from DHCP. */
export const BOOT_SUBNET = '10.213.0';
export const SERVER_IP = `${BOOT_SUBNET}.1`;
/**
 * A unique-local IPv6 prefix on the bridge, only so dnsmasq can answer iPXE's router
 * solicitations: without a router advertisement iPXE waits ~13 s for IPv6 before it
 * uses the DHCPv4 lease it already has.
 */
export const SERVER_IP6 = 'fd00:213::1';
const BRIDGE = 'br0';
const NAMESPACE_PREFIX = 'rtftp-e2e-';

export function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(
          new HarnessError(
            'E2E_ERR_COMMAND',
            `${command} ${args.join(' ')}: ${stderr.trim() || err.message}`,
            { cause: err },
          ),
        );
      } else resolve(stdout);
    });
  });
}

/** Programs and firmware files the PXE tests use, all from Debian packages. */
const PXE_REQUIREMENTS = [
  '/usr/bin/qemu-system-x86_64',
  '/usr/sbin/dnsmasq',
  '/usr/bin/busybox', // busybox-static: the initrd's only program
  '/usr/bin/cpio',
  '/usr/bin/nbdkit',
  '/usr/lib/ipxe/qemu/pxe-e1000.rom',
  '/usr/share/OVMF/OVMF_CODE.fd',
  '/usr/share/OVMF/OVMF_VARS.fd',
  '/usr/lib/grub/x86_64-efi/monolithic/grubnetx64.efi',
  '/usr/lib/PXELINUX/pxelinux.0',
  '/usr/lib/syslinux/modules/bios/ldlinux.c32',
];

/** Why this machine cannot run the PXE tests, or null when it can. */
export function pxeUnsupportedReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, tap devices, port 69)';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun for the VM tap device';
  for (const file of PXE_REQUIREMENTS) {
    if (!existsSync(file)) return `${file} is missing (scripts/setup.sh installs it)`;
  }
  return null;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Deletes namespaces left by earlier runs that died without their after hooks (the
 * name carries the owning test process's pid), killing what still runs inside them.
 */
async function removeStaleNamespaces(): Promise<void> {
  const list = await run('ip', ['netns', 'list']).catch(() => '');
  for (const name of list.split('\n').map((l) => l.split(' ')[0] ?? '')) {
    const m = new RegExp(`^${NAMESPACE_PREFIX}(\\d+)-`).exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    await killNamespacePids(name);
    await run('ip', ['netns', 'del', name]).catch(() => undefined);
  }
}

async function killNamespacePids(name: string): Promise<void> {
  const pids = await run('ip', ['netns', 'pids', name]).catch(() => '');
  for (const pid of pids.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

let counter = 0;

export class BootNetwork {
  private taps = 0;
  private constructor(readonly namespace: string) {}

  static async create(): Promise<BootNetwork> {
    await removeStaleNamespaces();
    const net = new BootNetwork(`${NAMESPACE_PREFIX}${process.pid}-${counter++}`);
    await run('ip', ['netns', 'add', net.namespace]);
    try {
      const ipn = (...args: string[]) => run('ip', ['-n', net.namespace, ...args]);
      await ipn('link', 'set', 'lo', 'up');
      await ipn('link', 'add', BRIDGE, 'type', 'bridge');
      await ipn('addr', 'add', `${SERVER_IP}/24`, 'dev', BRIDGE);
      await ipn('addr', 'add', `${SERVER_IP6}/64`, 'dev', BRIDGE, 'nodad');
      await ipn('link', 'set', BRIDGE, 'up');
    } catch (err) {
      await net.destroy();
      throw err;
    }
    return net;
  }

  /** A new tap device on the bridge, for one VM; returns its name. */
  async addTap(): Promise<string> {
    const tap = `tap${this.taps++}`;
    const ipn = (...args: string[]) => run('ip', ['-n', this.namespace, ...args]);
    await ipn('tuntap', 'add', 'dev', tap, 'mode', 'tap');
    await ipn('link', 'set', tap, 'master', BRIDGE);
    await ipn('link', 'set', tap, 'up');
    return tap;
  }

  /** Starts a long-running process inside the namespace. */
  start(name: string, command: string, args: readonly string[], opts?: StartOptions) {
    return startProcess(name, 'ip', ['netns', 'exec', this.namespace, command, ...args], opts);
  }

  /** Runs a short command inside the namespace and returns its stdout. */
  exec(command: string, args: readonly string[]): Promise<string> {
    return run('ip', ['netns', 'exec', this.namespace, command, ...args]);
  }

  /** Kills anything still inside and deletes the namespace; safe to call twice. */
  async destroy(): Promise<void> {
    await killNamespacePids(this.namespace);
    await run('ip', ['netns', 'del', this.namespace]).catch(() => undefined);
  }
}

/** Stops each process (in parallel), ignoring the ones never started. */
export async function stopAll(...procs: (TrackedProcess | undefined)[]): Promise<void> {
  await Promise.all(procs.map((p) => p?.stop()));
}
