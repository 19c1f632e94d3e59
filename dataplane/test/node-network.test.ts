/**
 * The dataplane on a Kubernetes node's network, built in network namespaces: two "real"
 * NICs (veths named eth1 and eth2, each to a client namespace), a stand-in for kube-proxy's
 * kube-ipvs0 carrying 1,000 Service addresses, and a CNI bridge (bridges: the kernel here
 * has no dummy driver). Real TFTP and HTTP clients (tftp-hpa, curl) run in the client
 * namespaces, as a machine on the boot network would.
 *
 * - Listening: `all` takes the real NICs only; a CIDR exactly its addresses; a spec that
 *   matches nothing is a running, not-ready pod that starts serving once the address comes.
 * - Exposure: /metrics and both probes answer on the node's addresses, IPv4 and IPv6,
 *   /status only to loopback (or --status-allow); the probe listener does not depend on
 *   --metrics-listen; IPv4-only and IPv6-only nodes are probed too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { makeTempDir } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { ip, netnsMissingReason } from './helpers/netns.ts';
import { failed, runClient } from './helpers/real-clients.ts';
import { servedTree } from './helpers/server-under-test.ts';
import { rtftpMissingReason, startRtftp } from './helpers/tftp-servers.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';

const SERVICE_ADDRESSES = 1000;
const METRICS_PORT = 9669;
const PROBE_PORT = 9671;

interface BootNode {
  node: string;
  /** Client namespaces: [0] behind eth1, [1] behind eth2. */
  clients: [string, string];
  /** Node addresses per NIC, as the dataplane binds them (link-local ones with their zone). */
  nicAddresses(): string[];
  destroy(): void;
}

let made = 0;

/**
 * A node namespace as described above; `families` says which addresses the NICs get (an
 * IPv4-only node has IPv6 switched off entirely, as with ipv6.disable).
 */
function createBootNode(tag: string, families: { v4: boolean; v6: boolean }): BootNode {
  const id = `${process.pid % 100000}${made++}`;
  const node = `rt-${tag}-${id}-node`;
  const clients: [string, string] = [`rt-${tag}-${id}-c1`, `rt-${tag}-${id}-c2`];
  const all = [node, ...clients];
  const destroy = () => {
    for (const ns of all) spawnSync('ip', ['netns', 'del', ns]);
  };
  try {
    for (const ns of all) {
      ip('netns', 'add', ns);
      // Addresses usable at once: no duplicate address detection to wait for.
      const sysctl = ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'];
      if (!families.v6)
        sysctl.push('net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
      const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...sysctl]);
      assert.equal(r.status, 0, String(r.stderr));
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    clients.forEach((client, i) => {
      const nic = `eth${i + 1}`;
      ip('-n', node, 'link', 'add', nic, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client);
      if (families.v4) {
        ip('-n', node, 'addr', 'add', `10.31.${i + 1}.1/24`, 'dev', nic);
        ip('-n', client, 'addr', 'add', `10.31.${i + 1}.2/24`, 'dev', 'eth0');
      }
      if (families.v6) {
        ip('-n', node, 'addr', 'add', `fd31:${i + 1}::1/64`, 'dev', nic);
        ip('-n', client, 'addr', 'add', `fd31:${i + 1}::2/64`, 'dev', 'eth0');
      }
      ip('-n', node, 'link', 'set', nic, 'up');
      ip('-n', client, 'link', 'set', 'eth0', 'up');
    });
    // kube-proxy (IPVS) puts every Service ClusterIP on kube-ipvs0.
    const batch = ['link add kube-ipvs0 type bridge', 'link set kube-ipvs0 up'];
    for (let i = 0; i < SERVICE_ADDRESSES; i++)
      batch.push(`addr add 10.96.${i >> 8}.${i & 255}/32 dev kube-ipvs0`);
    batch.push('link add cni0 type bridge', 'link set cni0 up', 'addr add 10.244.0.1/24 dev cni0');
    const r = spawnSync('ip', ['-n', node, '-batch', '-'], { input: batch.join('\n') + '\n' });
    assert.equal(r.status, 0, String(r.stderr));
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    node,
    clients,
    nicAddresses: () => addressesOf(node, ['eth1', 'eth2']),
    destroy,
  };
}

/** Addresses of the interfaces, link-local IPv6 with %zone, from `ip -j addr`. */
function addressesOf(netns: string, interfaces: string[]): string[] {
  const r = spawnSync('ip', ['-j', '-n', netns, 'addr', 'show'], { encoding: 'utf8' });
  const links = JSON.parse(r.stdout) as {
    ifname: string;
    addr_info: { local: string; scope: string }[];
  }[];
  return links
    .filter((l) => interfaces.includes(l.ifname))
    .flatMap((l) =>
      l.addr_info.map((a) => (a.scope === 'link' ? `${a.local}%${l.ifname}` : a.local)),
    );
}

/** Local addresses of the UDP sockets bound to `port` in the namespace, from `ss`. */
function udpSocketsOn(netns: string, port: number): string[] {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'ss', '-Hlun', `sport = :${port}`], {
    encoding: 'utf8',
  });
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => line.trim().split(/\s+/)[3]!)
    .map((local) => {
      // 10.0.0.1:69, [fd00::1]:69, [fe80::1]%eth1:69
      const m = /^\[?([^\]%]*?)\]?(%[^:]+)?:\d+$/.exec(local)!;
      return `${m[1]}${m[2] ?? ''}`;
    });
}

/** The HTTP status code of a GET from inside a namespace; '000' when nothing answers. */
function httpCode(netns: string, url: string): string {
  const r = spawnSync(
    'ip',
    ['netns', 'exec', netns, 'curl', '-g', '-s', '-o', '/dev/null', '-w', '%{http_code}'].concat([
      '--max-time',
      '5',
      url,
    ]),
    { encoding: 'utf8' },
  );
  return r.stdout;
}

const sorted = (a: string[]) => [...a].sort();

async function waitFor(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const skip = rtftpMissingReason() ?? netnsMissingReason();

describe('the dataplane on a node network (network namespaces)', { skip }, () => {
  let dir: TempDir;
  let root: string;
  let dual: BootNode;
  const servers: RunningServer[] = [];

  before(() => {
    dir = makeTempDir('rtftp-node-network');
    root = servedTree(dir.file('root')).root;
    writeFileSync(dir.file('root/default/pxelinux.0'), 'pxelinux from default/');
    dual = createBootNode('nodenet', { v4: true, v6: true });
  });
  after(async () => {
    for (const s of servers) await s.stop();
    dual?.destroy();
    dir?.remove();
  });

  const start = async (node: BootNode, listen: string, args: string[] = []) => {
    const server = await startRtftp({ root, netns: node.node, listen: [listen], port: 69, args });
    servers.push(server);
    return server;
  };
  const stop = async (server: RunningServer) => {
    await server.stop();
    servers.splice(servers.indexOf(server), 1);
  };

  describe('listening by interface and subnet', () => {
    it('"all" opens sockets on the real NICs only: not kube-ipvs0, the CNI bridge or loopback', async () => {
      const server = await start(dual, 'all');
      try {
        const bound = udpSocketsOn(dual.node, 69);
        assert.deepEqual(sorted(bound), sorted(dual.nicAddresses()));
        assert.equal(bound.length, 6, 'IPv4, IPv6 and link-local on each of eth1 and eth2');
        const out = dir.file('pxelinux.0');
        const run = await runClient('tftp-hpa', {
          host: '10.31.1.1',
          port: 69,
          file: 'pxelinux.0',
          out,
          netns: dual.clients[0],
          timeoutMs: 20_000,
        });
        assert.ok(!failed(run), run.output);
        assert.equal(readFileSync(out, 'utf8'), 'pxelinux from default/');
      } finally {
        await stop(server);
      }
    });

    for (const [listen, expected] of [
      ['10.31.0.0/16,fd31::/16', ['10.31.1.1', '10.31.2.1', 'fd31:1::1', 'fd31:2::1']],
      // On any interface, kube-ipvs0 too, when the block says so; exclusions win.
      [
        '10.96.1.0/28,!10.96.1.5',
        Array.from({ length: 16 }, (_, i) => `10.96.1.${i}`).filter((a) => a !== '10.96.1.5'),
      ],
    ] as const) {
      it(`a CIDR selects exactly its addresses: ${listen}`, async () => {
        const server = await start(dual, listen);
        try {
          assert.deepEqual(sorted(udpSocketsOn(dual.node, 69)), sorted([...expected]));
        } finally {
          await stop(server);
        }
      });
    }

    it('interface names and exclusions: eth*,!eth1 is every address of eth2', async () => {
      const server = await start(dual, 'eth*,!eth1');
      try {
        assert.deepEqual(
          sorted(udpSocketsOn(dual.node, 69)),
          sorted(addressesOf(dual.node, ['eth2'])),
        );
      } finally {
        await stop(server);
      }
    });

    it('a CIDR matching nothing runs not-ready with a clear log line, then serves once the address appears', async () => {
      const server = await start(dual, '10.77.0.0/24', [
        '--listen-rescan',
        '1',
        '--metrics-port',
        String(METRICS_PORT),
      ]);
      try {
        const line = await server.waitForLog((l) =>
          String(l.msg).startsWith('Listen matched no address'),
        );
        assert.equal(line.listen, '10.77.0.0/24');
        await server.waitForLog((l) => l.msg === 'HTTP server listening');
        // A few rescans later it is still running, still not ready, and said it once.
        await new Promise((r) => setTimeout(r, 2500));
        assert.ok(server.alive(), 'the dataplane exited');
        const probe = `http://127.0.0.1:${METRICS_PORT}/readyz`;
        assert.equal(httpCode(dual.node, probe), '503');
        assert.equal(
          server.logs.filter((l) => String(l.msg).startsWith('Listen matched no address')).length,
          1,
        );

        ip('-n', dual.node, 'addr', 'add', '10.77.0.1/24', 'dev', 'eth2');
        ip('-n', dual.clients[1], 'addr', 'add', '10.77.0.2/24', 'dev', 'eth0');
        await server.waitForLog((l) => l.msg === 'Address added' && l.address === '10.77.0.1');
        await waitFor(() => httpCode(dual.node, probe) === '200', 'ready');
        const run = await runClient('tftp-hpa', {
          host: '10.77.0.1',
          port: 69,
          file: 'pxelinux.0',
          out: dir.file('late.bin'),
          netns: dual.clients[1],
          timeoutMs: 20_000,
        });
        assert.ok(!failed(run), run.output);
      } finally {
        await stop(server);
        ip('-n', dual.node, 'addr', 'del', '10.77.0.1/24', 'dev', 'eth2');
      }
    });
  });

  describe('HTTP exposure and probes', () => {
    it('by default /metrics and both probes answer on the node addresses (IPv4 and IPv6), /status only on loopback', async () => {
      const server = await start(dual, 'all', ['--metrics-port', String(METRICS_PORT)]);
      try {
        await server.waitForLog((l) => l.msg === 'HTTP server listening');
        const client = dual.clients[0];
        for (const host of ['10.31.1.1', '[fd31:1::1]']) {
          const at = (path: string) => httpCode(client, `http://${host}:${METRICS_PORT}${path}`);
          assert.deepEqual(
            ['/metrics', '/healthz', '/readyz', '/status'].map(at),
            ['200', '200', '200', '403'],
            host,
          );
        }
        for (const host of ['127.0.0.1', '[::1]'])
          assert.equal(httpCode(dual.node, `http://${host}:${METRICS_PORT}/status`), '200', host);
      } finally {
        await stop(server);
      }
    });

    it('--status-allow opens /status to the CIDRs it names, and only to them', async () => {
      const server = await start(dual, 'all', [
        '--metrics-port',
        String(METRICS_PORT),
        '--status-allow',
        '10.31.1.0/24',
      ]);
      try {
        await server.waitForLog((l) => l.msg === 'HTTP server listening');
        assert.equal(httpCode(dual.clients[0], `http://10.31.1.1:${METRICS_PORT}/status`), '200');
        assert.equal(httpCode(dual.clients[1], `http://10.31.2.1:${METRICS_PORT}/status`), '403');
        // The same client over IPv6 is outside the IPv4 block.
        assert.equal(httpCode(dual.clients[0], `http://[fd31:1::1]:${METRICS_PORT}/status`), '403');
      } finally {
        await stop(server);
      }
    });

    it('with --metrics-listen on loopback the probe listener still answers the kubelet at the node IP, and serves nothing else', async () => {
      const server = await start(dual, 'all', [
        '--metrics-port',
        String(METRICS_PORT),
        '--metrics-listen',
        '127.0.0.1',
        '--probe-port',
        String(PROBE_PORT),
      ]);
      try {
        await server.waitForLog((l) => l.msg === 'Probe server listening');
        const client = dual.clients[0];
        assert.equal(httpCode(client, `http://10.31.1.1:${METRICS_PORT}/metrics`), '000');
        assert.equal(httpCode(dual.node, `http://127.0.0.1:${METRICS_PORT}/metrics`), '200');
        for (const host of ['10.31.1.1', '[fd31:1::1]']) {
          const at = (path: string) => httpCode(client, `http://${host}:${PROBE_PORT}${path}`);
          assert.deepEqual(
            ['/healthz', '/readyz', '/metrics', '/status'].map(at),
            ['200', '200', '404', '404'],
            host,
          );
        }
      } finally {
        await stop(server);
      }
    });

    for (const [name, families, host] of [
      ['IPv4-only', { v4: true, v6: false }, '10.31.1.1'],
      ['IPv6-only', { v4: false, v6: true }, '[fd31:1::1]'],
    ] as const) {
      it(`the default HTTP listener answers the probes on an ${name} node`, async () => {
        const node = createBootNode(name === 'IPv4-only' ? 'v4only' : 'v6only', families);
        try {
          const server = await start(node, 'all', ['--metrics-port', String(METRICS_PORT)]);
          try {
            await server.waitForLog((l) => l.msg === 'HTTP server listening');
            for (const path of ['/healthz', '/readyz'])
              assert.equal(
                httpCode(node.clients[0], `http://${host}:${METRICS_PORT}${path}`),
                '200',
                path,
              );
            assert.deepEqual(sorted(udpSocketsOn(node.node, 69)), sorted(node.nicAddresses()));
          } finally {
            await stop(server);
          }
        } finally {
          node.destroy();
        }
      });
    }
  });
});
