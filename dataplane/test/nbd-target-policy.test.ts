/**
 * --nbd-allow, the dataplane's defence in depth (sources/nbd-target-gate.ts), against the
 * real daemon (bin/rtftp.js), real nbdkit and real TFTP requests: every refused target has
 * a tripwire listening where the connection would go, and it must see nothing, while the
 * control (the same kind of target, allowed) does. Refusals are reported in /status, the
 * log and rtftp_nbd_targets_refused_total, and the client gets default/ instead.
 * Without the flag the standalone daemon serves a loopback nbdkit exactly as before.
 *
 * The link-local and Service-CIDR addresses live in a network namespace of the test's
 * own (root only; skipped with the reason otherwise).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { renderNbdConfig, type NbdBackend } from '../../common/src/nbd-config.ts';
import { startTripwire, type Tripwire } from './helpers/connect-tripwire.ts';
import { makeTempDir, type TempDir } from './helpers/fixtures.ts';
import { netnsMissingReason } from './helpers/netns.ts';
import { downloadFile } from './helpers/tftp-client.ts';
import {
  metricValue,
  rtftpMissingReason,
  startRtftp,
  type RunningServer,
} from './helpers/tftp-servers.ts';
import { buildFilesystemImage } from './fixtures/disk-image.ts';
import { freePort, startNbdkit, type RunningNbdkit } from './fixtures/nbdkit.ts';

const MOUNTS = [{ partition: 1, mountpoint: '/' }];

interface DiskStatus {
  client: string;
  url: string;
  state: string;
  lastError: { code: string; reason: string; message: string } | null;
}

function writeConfig(
  dir: string,
  ip: string,
  url: string,
  extra: { backend?: NbdBackend; nbdAllow?: string[] } = {},
) {
  writeFileSync(
    `${dir}/${ip}.nbd`,
    renderNbdConfig({ url, mounts: MOUNTS, tftpRoot: '/boot', ...extra }),
  );
}

async function fetchFile(server: RunningServer, from: string, file = 'hello.txt'): Promise<string> {
  const r = await downloadFile({
    host: '127.0.0.1',
    port: server.port,
    file,
    localAddress: from,
    keep: true,
    retransmitMs: 1000,
  });
  assert.ok(r.ok, `${from}: ${r.failure ?? JSON.stringify(r.error)}`);
  return r.data!.toString();
}

const refusedOf = (server: RunningServer) =>
  server.logs.filter((l) => l.msg === 'Disk connect failed' && l.reason === 'not-permitted');

describe(
  '--nbd-allow on loopback targets (real daemon, real nbdkit)',
  { skip: rtftpMissingReason(), timeout: 10 * 60_000 },
  () => {
    let dir: TempDir;
    let root: string;
    let nbdkit: RunningNbdkit;
    let trip: Tripwire;
    let tripTcp: string;
    let tripNamed: string;
    let tripSock: string;
    const servers: RunningServer[] = [];

    before(async () => {
      dir = makeTempDir('rtftp-nbd-allow');
      root = dir.file('root');
      mkdirSync(`${root}/default`, { recursive: true });
      writeFileSync(`${root}/default/hello.txt`, 'from default/\n');
      const image = dir.file('boot.img');
      await buildFilesystemImage(image, {
        fs: 'vfat',
        sizeMiB: 8,
        files: [{ path: 'boot/hello.txt', content: 'from the disk\n' }],
      });
      nbdkit = await startNbdkit({ partitions: [image] });
      tripSock = dir.file('tripwire.sock');
      trip = await startTripwire({
        tcp: [
          { host: '127.0.0.1', port: 0 },
          { host: '127.0.0.3', port: 0 },
        ],
        unix: [tripSock],
      });
      [tripTcp, tripNamed] = trip.listening as [string, string];
    });
    after(async () => {
      await Promise.all(servers.map((s) => s.stop()));
      await trip?.stop();
      await nbdkit?.stop();
      dir?.remove();
    });

    it('without --nbd-allow, a loopback nbdkit disk is served exactly as before', async () => {
      const configs = dir.file('configs-open');
      mkdirSync(configs);
      writeConfig(configs, '127.0.0.21', nbdkit.url);
      const server = await startRtftp({ root, args: ['--config-dir', configs] });
      servers.push(server);
      assert.equal(await fetchFile(server, '127.0.0.21'), 'from the disk\n');
      assert.equal(
        server.logs.some((l) => l.msg === 'NBD targets restricted'),
        false,
      );
    });

    it('refused targets: no connection at all, not-permitted in /status, log and metrics, default/ served', async () => {
      const configs = dir.file('configs-refused');
      mkdirSync(configs);
      const port = tripTcp.split(':')[1];
      const targets: Record<string, [string, { backend?: NbdBackend; nbdAllow?: string[] }?]> = {
        '127.0.0.11': [`nbd://${tripTcp}/x`],
        '127.0.0.12': [`nbd://localhost:${port}/x`],
        '127.0.0.13': [`nbd+unix:///x?socket=${tripSock}`],
        '127.0.0.14': [`nbd://${tripTcp}/x`, { backend: 'guestfs' }],
        // Allowed by --nbd-allow, refused by the config's own list (the operator's, for a name that moved).
        '127.0.0.15': [`nbd://${tripNamed}/x`, { nbdAllow: ['192.0.2.0/24'] }],
      };
      for (const [ip, [url, extra]] of Object.entries(targets))
        writeConfig(configs, ip, url, extra);
      const metricsPort = await freePort();
      const server = await startRtftp({
        root,
        args: [
          '--config-dir',
          configs,
          // Even "everything" leaves loopback out; 127.0.0.3 is named, so only 127.0.0.15's own
          // nbd_allow refuses it.
          '--nbd-allow',
          `0.0.0.0/0,::/0,127.0.0.3/32`,
          '--metrics-port',
          String(metricsPort),
          '--metrics-listen',
          '127.0.0.1',
        ],
      });
      servers.push(server);
      // Every config is prefetched at once; each is refused once, before any connect.
      for (let i = 0; i < 100 && refusedOf(server).length < 5; i++)
        await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(
        refusedOf(server)
          .map((l) => l.client)
          .sort(),
        Object.keys(targets).sort(),
      );
      // A request from each client retries only on request, and is refused again: default/.
      for (const ip of Object.keys(targets))
        assert.equal(await fetchFile(server, ip), 'from default/\n');
      assert.deepEqual(trip.connections, [], 'a refused target never sees a connection');

      const status = (await (await fetch(`http://127.0.0.1:${metricsPort}/status`)).json()) as {
        disks: DiskStatus[];
      };
      for (const ip of Object.keys(targets)) {
        const d = status.disks.find((x) => x.client === ip);
        assert.equal(d?.state, 'failed', ip);
        assert.equal(d?.lastError?.reason, 'not-permitted', ip);
        assert.equal(d?.lastError?.code, 'RTFTP_ERR_NBD_NOT_PERMITTED', ip);
        assert.match(d!.lastError!.message, /no connection was attempted/);
      }
      const byIp = (ip: string) => status.disks.find((x) => x.client === ip)!.lastError!.message;
      assert.match(byIp('127.0.0.12'), /localhost resolves to 127\.0\.0\.1, which is loopback/);
      assert.match(byIp('127.0.0.13'), /unix socket .* is not listed/);
      assert.match(byIp('127.0.0.15'), /the config's nbd_allow/);
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.ok(
        (metricValue(metrics, 'rtftp_nbd_targets_refused_total{rule="reserved"}') ?? 0) >= 3,
      );
      assert.ok((metricValue(metrics, 'rtftp_nbd_targets_refused_total{rule="socket"}') ?? 0) >= 1);
      assert.ok(
        (metricValue(
          metrics,
          'rtftp_nbd_launch_failures_total{backend="guestfs",reason="not-permitted"}',
        ) ?? 0) >= 1,
      );
    });

    it('allowed: a name is connected through the address that was checked, native and libguestfs', async () => {
      const configs = dir.file('configs-allowed');
      mkdirSync(configs);
      const port = nbdkit.port!;
      writeConfig(configs, '127.0.0.31', `nbd://localhost:${port}/`, { backend: 'native' });
      writeConfig(configs, '127.0.0.32', `nbd://127.0.0.1:${port}/`, { backend: 'guestfs' });
      const server = await startRtftp({
        root,
        args: [
          '--config-dir',
          configs,
          '--nbd-allow',
          `127.0.0.1/32:${port},::1/128:${port}`,
          '--disk-wait',
          '120',
        ],
        env: { LIBGUESTFS_BACKEND: 'direct' },
      });
      servers.push(server);
      await server.waitForLog((l) => l.msg === 'NBD targets restricted');
      assert.equal(await fetchFile(server, '127.0.0.31'), 'from the disk\n');
      // One appliance (15-30 s under TCG): the only proof the libguestfs path still works under the rule.
      await server.waitForLog(
        (l) => l.msg === 'Disk connected' && l.client === '127.0.0.32',
        240_000,
      );
      assert.equal(await fetchFile(server, '127.0.0.32'), 'from the disk\n');
    });
  },
);

describe(
  '--nbd-allow on link-local and cluster addresses (a network namespace)',
  { skip: rtftpMissingReason() ?? netnsMissingReason(), timeout: 120_000 },
  () => {
    const ns = `rt-nbdallow-${process.pid % 100000}`;
    let dir: TempDir;
    let trip: Tripwire;
    let server: RunningServer | undefined;
    const ipNs = (...a: string[]) => {
      const r = spawnSync('ip', ['-n', ns, ...a], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip -n ${ns} ${a.join(' ')}: ${r.stderr}`);
    };

    before(async () => {
      spawnSync('ip', ['netns', 'del', ns]);
      const r = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      ipNs('link', 'set', 'lo', 'up');
      for (const a of ['169.254.169.254/32', '10.96.0.10/32', '192.0.2.10/32'])
        ipNs('addr', 'add', a, 'dev', 'lo');
      trip = await startTripwire({
        netns: ns,
        tcp: ['169.254.169.254', '10.96.0.10', '192.0.2.10'].map((host) => ({ host, port: 10809 })),
      });
      dir = makeTempDir('rtftp-nbd-allow-ns');
      mkdirSync(dir.file('root/default'), { recursive: true });
    });
    after(async () => {
      await server?.stop();
      await trip?.stop();
      spawnSync('ip', ['netns', 'del', ns]);
      dir?.remove();
    });

    it('the metadata address and a Service-CIDR address see no connection; an allowed address does', async () => {
      const configs = dir.file('configs');
      mkdirSync(configs);
      writeConfig(configs, '10.1.0.1', 'nbd://169.254.169.254:10809/x');
      writeConfig(configs, '10.1.0.2', 'nbd://10.96.0.10:10809/x');
      writeConfig(configs, '10.1.0.3', 'nbd://192.0.2.10:10809/x');
      server = await startRtftp({
        root: dir.file('root'),
        netns: ns,
        args: [
          '--config-dir',
          configs,
          '--nbd-allow',
          '0.0.0.0/0,::/0',
          '--nbd-deny',
          '10.96.0.0/12',
        ],
      });
      // The control: same port, allowed address, prefetched at the same moment as the others.
      await trip.waitFor('192.0.2.10:10809');
      await server.waitForLog((l) => l.reason === 'not-permitted' && l.client === '10.1.0.1');
      await server.waitForLog((l) => l.reason === 'not-permitted' && l.client === '10.1.0.2');
      assert.equal(trip.count('169.254.169.254:10809'), 0);
      assert.equal(trip.count('10.96.0.10:10809'), 0);
      const messages = refusedOf(server).map((l) => String(l.err));
      assert.ok(
        messages.some((m) => /169\.254\.169\.254 is link-local/.test(m)),
        messages.join('\n'),
      );
      assert.ok(
        messages.some((m) => /10\.96\.0\.10 is refused by --nbd-deny/.test(m)),
        messages.join('\n'),
      );
    });
  },
);
