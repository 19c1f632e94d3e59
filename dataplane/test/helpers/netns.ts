/**
 * Network namespaces for tests that need real, distinct client addresses: a server
 * namespace joined by one veth pair to each client namespace. Nothing here touches
 * the host's own namespace beyond creating and deleting these.
 */
import { spawnSync } from 'node:child_process';

let made = 0;

/** Runs `ip` with these arguments; throws TEST_NETNS_FAILED with its stderr. */
export function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) {
    throw Object.assign(new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`), {
      code: 'TEST_NETNS_FAILED',
    });
  }
}

/** Why namespaces cannot be made here, or undefined when they can. */
export function netnsMissingReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const name = `rt-probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (r.status !== 0) return `ip netns add failed: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', name]);
  return undefined;
}

export interface ClientSeat {
  netns: string;
  /** The client's own address, as the server sees it. */
  address: string;
  /** The server's address on this client's link. */
  serverAddress: string;
  /** The link's interface in the server's namespace (the zone of a link-local address). */
  serverIf: string;
  /** The link's interface in the client's namespace. */
  clientIf: string;
}

export interface StarTopology {
  server: string;
  clients: ClientSeat[];
  destroy(): void;
}

/**
 * Server namespace + `clientCount` client namespaces; client i is 10.99.<i+1>.2 and
 * reaches the server at 10.99.<i+1>.1. Names carry the PID so parallel runs never clash.
 * With 'ipv6-link-local' each link carries only fe80::1 (server) and fe80::2 (client),
 * without duplicate address detection so they work at once: a zone (%ifname) is then the
 * only way to name the other end.
 */
export function createStarTopology(
  tag: string,
  clientCount: number,
  addressing: 'ipv4' | 'ipv6-link-local' = 'ipv4',
): StarTopology {
  const id = `${process.pid % 100000}${made++}`;
  const server = `rt-${tag}-${id}-srv`;
  const namespaces: string[] = [];
  const destroy = () => {
    for (const ns of namespaces.reverse()) spawnSync('ip', ['netns', 'del', ns]);
  };
  try {
    ip('netns', 'add', server);
    namespaces.push(server);
    ip('-n', server, 'link', 'set', 'lo', 'up');
    const clients: ClientSeat[] = [];
    for (let i = 0; i < clientCount; i++) {
      const netns = `rt-${tag}-${id}-c${i}`;
      ip('netns', 'add', netns);
      namespaces.push(netns);
      ip('-n', netns, 'link', 'set', 'lo', 'up');
      const srvIf = `v${id}s${i}`;
      const cliIf = `v${id}c${i}`;
      ip('-n', server, 'link', 'add', srvIf, 'type', 'veth', 'peer', 'name', cliIf, 'netns', netns);
      const [serverAddress, address, prefix, extra] =
        addressing === 'ipv4'
          ? [`10.99.${i + 1}.1`, `10.99.${i + 1}.2`, 24, []]
          : ['fe80::1', 'fe80::2', 64, ['nodad']];
      if (addressing === 'ipv6-link-local') {
        // Only the addresses we give: no kernel-made EUI-64 fe80:: address, which the
        // client could otherwise pick as its source once its DAD finishes.
        ip('-n', server, 'link', 'set', 'dev', srvIf, 'addrgenmode', 'none');
        ip('-n', netns, 'link', 'set', 'dev', cliIf, 'addrgenmode', 'none');
      }
      ip('-n', server, 'addr', 'add', `${serverAddress}/${prefix}`, 'dev', srvIf, ...extra);
      ip('-n', server, 'link', 'set', srvIf, 'up');
      ip('-n', netns, 'addr', 'add', `${address}/${prefix}`, 'dev', cliIf, ...extra);
      ip('-n', netns, 'link', 'set', cliIf, 'up');
      clients.push({ netns, address, serverAddress, serverIf: srvIf, clientIf: cliIf });
    }
    return { server, clients, destroy };
  } catch (err) {
    destroy();
    throw err;
  }
}

/**
 * One namespace with loopback and one more interface: some servers (in.tftpd) exit
 * silently when loopback is the only interface.
 */
export function createIsolatedNamespace(tag: string): { netns: string; destroy(): void } {
  const netns = `rt-${tag}-${process.pid % 100000}${made++}`;
  ip('netns', 'add', netns);
  try {
    ip('-n', netns, 'link', 'set', 'lo', 'up');
    // A veth pair with both ends inside: the kernel here has no dummy interface module.
    ip('-n', netns, 'link', 'add', 'side0', 'type', 'veth', 'peer', 'name', 'side1');
    ip('-n', netns, 'addr', 'add', '10.98.0.1/24', 'dev', 'side0');
    ip('-n', netns, 'link', 'set', 'side0', 'up');
    ip('-n', netns, 'link', 'set', 'side1', 'up');
  } catch (err) {
    spawnSync('ip', ['netns', 'del', netns]);
    throw err;
  }
  return { netns, destroy: () => void spawnSync('ip', ['netns', 'del', netns]) };
}
