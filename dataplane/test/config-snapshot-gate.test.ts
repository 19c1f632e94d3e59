/**
 * `--require-snapshot`, as the dataplane process runs it in a pod: the config dir fills
 * while the dataplane already listens, and no client may get `default/`'s payload in that
 * window. The sync sidecar is played by the test, writing configs and the marker as the
 * contract says (snapshot-gate.ts): files first, then the marker, renamed into place.
 */
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { renderNbdConfig } from '../../common/src/nbd-config.ts';
import { SNAPSHOT_MARKER } from '../../common/src/snapshot-marker.ts';
import { buildFilesystemImage } from './fixtures/disk-image.ts';
import { freePort, startNbdkit } from './fixtures/nbdkit.ts';
import type { RunningNbdkit } from './fixtures/nbdkit.ts';
import { makeTempDir, seededBytes } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { servedTree } from './helpers/server-under-test.ts';
import { decodePacket, encodeError, encodeRrq } from './helpers/tftp-packets.ts';
import type { Packet } from './helpers/tftp-packets.ts';
import { metricValue, rtftpMissingReason, startRtftp } from './helpers/tftp-servers.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';
import { UdpEndpoint } from './helpers/udp-endpoint.ts';

const DISK_FILE = seededBytes(512 * 3 + 11, 14);
const OTHER_CLIENTS = 1000;
const RESCUE = Buffer.from('the rescue file from default/');
const MARKER = {
  complete: true,
  source: 'api',
  resourceVersions: { 'rtftp-configs-0': '4711' },
  syncedAt: new Date().toISOString(),
};

/**
 * Sends the RRQ every 100 ms (as firmware retries) from one port until the first reply.
 * Repeats from one port are duplicates once a transfer runs, so the first reply is the
 * only answer the client ever gets: it must be the right file.
 */
async function firstAnswer(ep: UdpEndpoint, server: RunningServer, withinMs: number) {
  const end = Date.now() + withinMs;
  while (Date.now() < end) {
    await ep.send(encodeRrq('ten.bin'), server.port);
    const d = await ep.receive(100);
    if (d) {
      await ep.send(encodeError(0, 'enough'), d.port);
      return decodePacket(d.msg);
    }
  }
  return undefined;
}

const firstBlock = (p: Packet | undefined) => (p?.kind === 'data' ? p.data : undefined);

describe('config snapshot gate (--require-snapshot)', { skip: rtftpMissingReason() }, () => {
  let dir: TempDir;
  let root: string;
  let configDir: string;
  let nbd: RunningNbdkit;

  const writeMarker = (value: object | string) => {
    const tmp = join(configDir, '.snapshot.tmp');
    writeFileSync(tmp, typeof value === 'string' ? value : JSON.stringify(value));
    renameSync(tmp, join(configDir, SNAPSHOT_MARKER));
  };
  const start = async (metricsPort: number) =>
    startRtftp({
      root,
      listen: ['127.0.0.1', '127.0.0.2'],
      args: [
        '--config-dir',
        configDir,
        '--require-snapshot',
        '--metrics-port',
        String(metricsPort),
        '--metrics-listen',
        '127.0.0.1',
        '--log-level',
        'debug',
      ],
    });

  before(async () => {
    dir = makeTempDir('rtftp-snapshot');
    const tree = servedTree(dir.file('root'));
    root = tree.root;
    writeFileSync(join(tree.defaultDir, 'ten.bin'), RESCUE);
    configDir = dir.file('configs');
    mkdirSync(configDir);
    const image = dir.file('disk.img');
    await buildFilesystemImage(image, {
      fs: 'vfat',
      sizeMiB: 8,
      files: [{ path: 'ten.bin', content: DISK_FILE }],
    });
    nbd = await startNbdkit({ partitions: [image], table: 'mbr' });
  });
  after(async () => {
    await nbd?.stop();
    dir?.remove();
  });

  it('answers nothing until the snapshot is complete, then serves the client its disk, never default/', async () => {
    const metricsPort = await freePort();
    const server = await start(metricsPort);
    const withConfig = await UdpEndpoint.open('127.0.0.1');
    const noConfig = await UdpEndpoint.open('127.0.0.2');
    const http = (path: string) => fetch(`http://127.0.0.1:${metricsPort}${path}`);
    try {
      await server.waitForLog((l) => l.msg === 'HTTP server listening');
      // Nothing yet: no reply at all (not even an ERROR), and the pod is not ready.
      assert.equal(await firstAnswer(noConfig, server, 1500), undefined);
      const readyz = await http('/readyz');
      assert.equal(readyz.status, 503);
      assert.deepEqual(((await readyz.json()) as { reasons: string[] }).reasons, [
        'no complete config snapshot yet',
      ]);

      // The sidecar is writing: the client's config is there, the marker not yet, then
      // a marker that says incomplete. Still nothing.
      const config = renderNbdConfig({
        url: nbd.url,
        mounts: [{ partition: 1, mountpoint: '/' }],
        tftpRoot: '/',
        backend: 'native',
      });
      // A snapshot of a big site: loading it takes the dataplane a while, and a request
      // admitted before it is loaded would get default/.
      const idle = renderNbdConfig({
        url: nbd.url,
        mounts: [{ partition: 1, mountpoint: '/' }],
        tftpRoot: '/',
        prefetch: false,
      });
      for (let i = 0; i < OTHER_CLIENTS; i++)
        writeFileSync(join(configDir, `10.50.${i >> 8}.${i & 255}.nbd`), idle);
      writeFileSync(join(configDir, '127.0.0.1.nbd'), config);
      assert.equal(await firstAnswer(withConfig, server, 1000), undefined);
      writeMarker({ ...MARKER, complete: false });
      await server.waitForLog((l) => l.reason === 'incomplete');
      assert.equal(await firstAnswer(withConfig, server, 1000), undefined);

      // Complete: the very first answer is the client's own disk.
      writeMarker(MARKER);
      const served = await firstAnswer(withConfig, server, 10_000);
      assert.deepEqual(firstBlock(served), DISK_FILE.subarray(0, 512), 'not the disk file');
      assert.deepEqual(firstBlock(await firstAnswer(noConfig, server, 2000)), RESCUE);

      assert.equal((await http('/readyz')).status, 200);
      const status = (await (await http('/status')).json()) as {
        configSnapshot: Record<string, unknown>;
      };
      assert.deepEqual(
        [status.configSnapshot.state, status.configSnapshot.source],
        ['serving', 'api'],
      );
      assert.deepEqual(status.configSnapshot.resourceVersions, MARKER.resourceVersions);
      const metrics = await (await http('/metrics')).text();
      assert.ok(
        (metricValue(metrics, 'rtftp_requests_dropped_total{reason="snapshot-pending"}') ?? 0) >= 3,
      );
      assert.equal(
        metricValue(metrics, 'rtftp_config_snapshot_timestamp_seconds'),
        Date.parse(MARKER.syncedAt) / 1000,
      );
      assert.ok(server.logs.some((l) => l.msg === 'Request dropped' && l.client === '127.0.0.2'));

      // A marker the sidecar botches later changes nothing: the disk is still served.
      writeMarker('{"complete": tr');
      await server.waitForLog((l) => l.reason === 'not JSON');
      const again = await UdpEndpoint.open('127.0.0.1');
      try {
        assert.deepEqual(
          firstBlock(await firstAnswer(again, server, 2000)),
          DISK_FILE.subarray(0, 512),
        );
      } finally {
        again.close();
      }
    } finally {
      withConfig.close();
      noConfig.close();
      await server.stop();
    }
  });

  it('a dataplane restarted with the snapshot on the node (API server down) serves the disk at once', async () => {
    // The configs and a marker from the node's copy are in place before the process starts.
    writeMarker({ ...MARKER, source: 'node' });
    const server = await start(await freePort());
    const ep = await UdpEndpoint.open('127.0.0.1');
    try {
      const line = await server.waitForLog((l) =>
        String(l.msg).startsWith('Config snapshot served'),
      );
      assert.equal(line.source, 'node');
      assert.deepEqual(firstBlock(await firstAnswer(ep, server, 5000)), DISK_FILE.subarray(0, 512));
    } finally {
      ep.close();
      await server.stop();
    }
  });
});
