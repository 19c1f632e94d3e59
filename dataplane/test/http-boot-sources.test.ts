/**
 * HTTP boot against each source of the view, with real curl from distinct loopback
 * addresses (each one a client) to the real daemon: a per-client dir, a native NBD disk
 * (ext4 behind nbdkit) and default/. For each source every status code: 200 and 206
 * byte-for-byte, HEAD with the headers a GET gets and no body, 304 by ETag and by date,
 * 416, 403 where TFTP sends ERROR 2, 404 where it sends ERROR 1; then 503 + Retry-After
 * for a disk still connecting past --disk-wait, 405 and 400; and the per-transfer log
 * line and metrics with `protocol`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderNbdConfig } from '../../common/src/nbd-config.ts';
import { buildFilesystemImage, makeSpecialFile } from './fixtures/disk-image.ts';
import { startNbdkit } from './fixtures/nbdkit.ts';
import type { RunningNbdkit } from './fixtures/nbdkit.ts';
import { makeTempDir, seededBytes, sha256 } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { curl, rawRequest, startRtftpWithHttpBoot } from './helpers/http-boot.ts';
import type { RtftpWithHttpBoot } from './helpers/http-boot.ts';
import { metricValue, rtftpMissingReason } from './helpers/tftp-servers.ts';

const DIR_CLIENT = '127.0.0.2';
const DISK_CLIENT = '127.0.0.3';
const NOT_READY_CLIENT = '127.0.0.4';
const DEFAULT_CLIENT = '127.0.0.9';
/** Whole seconds (HTTP dates) and even ones (FAT). */
const MTIME = new Date(Date.UTC(2026, 4, 6, 7, 8, 10));

interface SourceCase {
  source: 'client-dir' | 'nbd' | 'default';
  client: string;
  file: string;
  data: Buffer;
  /** A name this source refuses (ERROR 2 over TFTP), and the reason. */
  refused: [name: string, reason: string];
}

const kernel = seededBytes(1024 * 1024 + 333, 1);
const diskKernel = seededBytes(700_001, 2);
const common = seededBytes(300_000, 3);
const CASES: SourceCase[] = [
  {
    source: 'client-dir',
    client: DIR_CLIENT,
    file: 'kernel.img',
    data: kernel,
    refused: ['escape', 'symlink leaves its directory'],
  },
  {
    source: 'nbd',
    client: DISK_CLIENT,
    file: 'kernel.img',
    data: diskKernel,
    refused: ['escape', 'symlink leaves tftp_root'],
  },
  {
    source: 'default',
    client: DEFAULT_CLIENT,
    file: 'common.bin',
    data: common,
    refused: ['fifo', 'not a regular file (fifo)'],
  },
];

describe(
  'HTTP boot from each source of the view',
  { skip: rtftpMissingReason(), timeout: 180_000 },
  () => {
    let dir: TempDir;
    let rtftp: RtftpWithHttpBoot;
    let nbd: RunningNbdkit;
    let paused: RunningNbdkit;
    let notReadyConfig: string;
    const url = (name: string) => `http://127.0.0.1:${rtftp.httpPort}/${name}`;

    before(async () => {
      dir = makeTempDir('rtftp-http-sources');
      const root = dir.file('root');
      const clientDir = join(root, DIR_CLIENT);
      const def = join(root, 'default');
      await mkdir(clientDir, { recursive: true });
      await mkdir(def, { recursive: true });
      await writeFile(join(clientDir, 'kernel.img'), kernel);
      await utimes(join(clientDir, 'kernel.img'), MTIME, MTIME);
      await symlink('../default/common.bin', join(clientDir, 'escape'));
      await writeFile(join(def, 'common.bin'), common);
      await utimes(join(def, 'common.bin'), MTIME, MTIME);
      await makeSpecialFile('fifo', join(def, 'fifo'));
      const image = dir.file('disk.img');
      await buildFilesystemImage(image, {
        fs: 'ext4',
        sizeMiB: 16,
        files: [
          { path: 'boot/kernel.img', content: diskKernel, mtime: MTIME },
          { path: 'boot/escape', symlink: '/etc/hostname' },
          { path: 'etc/hostname', content: 'outside tftp_root\n' },
        ],
      });
      nbd = await startNbdkit({ image });
      paused = await startNbdkit({ image });
      paused.pause(); // TCP accepts, the NBD handshake never comes: "disk not ready"
      const config = (u: string) =>
        renderNbdConfig({
          url: u,
          mounts: [{ partition: 0, mountpoint: '/' }],
          tftpRoot: '/boot',
          backend: 'native',
        });
      await writeFile(join(root, `${DISK_CLIENT}.nbd`), config(nbd.url));
      notReadyConfig = config(paused.url);
      rtftp = await startRtftpWithHttpBoot(root, ['--disk-wait', '1']);
      await rtftp.server.waitForLog((l) => l.msg === 'Disk connected' && l.client === DISK_CLIENT);
    });

    after(async () => {
      await rtftp?.server.stop();
      paused?.resume();
      await Promise.all([nbd?.stop(), paused?.stop()]);
      dir?.remove();
    });

    for (const c of CASES) {
      describe(`source ${c.source} (client ${c.client})`, () => {
        it('200: the whole file, byte for byte, with Content-Length, ETag and Last-Modified from its metadata', async () => {
          const r = await curl(url(c.file), [], c.client);
          assert.equal(r.status, 200);
          assert.equal(sha256(r.body), sha256(c.data));
          assert.equal(r.headers['content-length'], String(c.data.length));
          assert.equal(r.headers['last-modified'], MTIME.toUTCString());
          assert.match(r.headers.etag ?? '', /^"[0-9a-f-]+"$/);
          assert.equal(r.headers['accept-ranges'], 'bytes');
          const line = await rtftp.server.waitForLog(
            (l) => l.msg === 'Transfer completed' && l.client === c.client && l.file === c.file,
          );
          assert.equal(line.protocol, 'http');
          assert.equal(line.source, c.source);
          assert.equal(line.identity, 'ip');
          assert.equal(line.bytes, c.data.length);
        });

        it('206: a range and a suffix range, byte for byte', async () => {
          const mid = await curl(url(c.file), ['-H', 'Range: bytes=1000-66535'], c.client);
          assert.equal(mid.status, 206);
          assert.equal(mid.headers['content-range'], `bytes 1000-66535/${c.data.length}`);
          assert.deepEqual(mid.body, c.data.subarray(1000, 66536));
          const tail = await curl(url(c.file), ['-H', 'Range: bytes=-100'], c.client);
          assert.equal(tail.status, 206);
          assert.deepEqual(tail.body, c.data.subarray(c.data.length - 100));
        });

        it('HEAD: the headers a GET gets, and no body', async () => {
          const get = await curl(url(c.file), [], c.client);
          const head = await curl(url(c.file), ['-I'], c.client);
          assert.equal(head.status, 200);
          assert.equal(head.body.length, 0);
          for (const h of [
            'content-length',
            'etag',
            'last-modified',
            'content-type',
            'accept-ranges',
          ])
            assert.equal(head.headers[h], get.headers[h], h);
        });

        it('304 by If-None-Match and by If-Modified-Since; 416 past the end', async () => {
          const { headers } = await curl(url(c.file), ['-I'], c.client);
          const byTag = await curl(url(c.file), ['-H', `If-None-Match: ${headers.etag}`], c.client);
          assert.equal(byTag.status, 304);
          assert.equal(byTag.body.length, 0);
          const byDate = await curl(
            url(c.file),
            ['-H', `If-Modified-Since: ${headers['last-modified']}`],
            c.client,
          );
          assert.equal(byDate.status, 304);
          const past = await curl(url(c.file), ['-H', `Range: bytes=${c.data.length}-`], c.client);
          assert.equal(past.status, 416);
          assert.equal(past.headers['content-range'], `bytes */${c.data.length}`);
        });

        it('403 where TFTP sends ERROR 2, with the same reason; 404 where it sends ERROR 1', async () => {
          const [name, reason] = c.refused;
          const refused = await curl(url(name), [], c.client);
          assert.equal(refused.status, 403);
          await rtftp.server.waitForLog(
            (l) =>
              l.msg === 'Request refused' &&
              l.client === c.client &&
              l.reason === reason &&
              l.status === 403,
          );
          const missing = await curl(url('no-such-file'), [], c.client);
          assert.equal(missing.status, 404);
        });
      });
    }

    it('a file only in default/ is served to the disk client; its own file shadows nothing else', async () => {
      const r = await curl(url('common.bin'), [], DISK_CLIENT);
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), sha256(common));
    });

    it('503 with Retry-After while the client’s disk is still connecting past --disk-wait, never default/', async () => {
      // Written now: the connect that never completes starts now, not at the daemon's start.
      await writeFile(dir.file('root', `${NOT_READY_CLIENT}.nbd`), notReadyConfig);
      await rtftp.server.waitForLog(
        (l) => l.msg === 'Disk connecting' && l.client === NOT_READY_CLIENT,
      );
      const r = await curl(url('common.bin'), [], NOT_READY_CLIENT);
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '5');
      await rtftp.server.waitForLog(
        (l) =>
          l.msg === 'Request refused' &&
          l.client === NOT_READY_CLIENT &&
          l.reason === 'disk-not-ready',
      );
    });

    it('405 with Allow for other methods; 400 for a target that is not a path', async () => {
      for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
        const r = await curl(url(CASES[0]!.file), ['-X', method], DIR_CLIENT);
        assert.equal(r.status, 405, method);
        assert.equal(r.headers.allow, 'GET, HEAD');
      }
      for (const target of ['/%zz', '/%C3', '/a#b']) {
        const r = await rawRequest(rtftp.httpPort, target, { localAddress: DIR_CLIENT });
        assert.equal(r.status, 400, target);
      }
    });

    it('forwarded headers are never read: the TCP peer is the client', async () => {
      const r = await curl(
        url('kernel.img'),
        [
          '-H',
          `X-Forwarded-For: ${DIR_CLIENT}`,
          '-H',
          `Forwarded: for=${DIR_CLIENT}`,
          '-H',
          `X-Real-IP: ${DIR_CLIENT}`,
        ],
        DEFAULT_CLIENT,
      );
      assert.equal(r.status, 404, 'the default client has no kernel.img; 127.0.0.2 has');
    });

    it('metrics carry the protocol; every status code is counted', async () => {
      const text = await (await fetch(`http://127.0.0.1:${rtftp.metricsPort}/metrics`)).text();
      for (const source of ['client-dir', 'nbd', 'default'])
        assert.ok(
          (metricValue(
            text,
            `rtftp_transfers_total{outcome="completed",source="${source}",protocol="http"}`,
          ) ?? 0) >= 3,
          source,
        );
      for (const code of ['200', '206', '304', '400', '403', '404', '405', '416', '503'])
        assert.ok(
          (metricValue(text, `rtftp_http_responses_total{code="${code}"}`) ?? 0) >= 1,
          code,
        );
      assert.ok(
        (metricValue(text, 'rtftp_requests_refused_total{reason="not-found",protocol="http"}') ??
          0) >= 3,
      );
      assert.equal(metricValue(text, 'rtftp_transfers_active{protocol="http"}'), 0);
      const local = await stat(dir.file('root', DIR_CLIENT, 'kernel.img'));
      assert.equal(local.mtimeMs, MTIME.getTime());
    });
  },
);
