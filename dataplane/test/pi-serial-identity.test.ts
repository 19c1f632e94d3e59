/**
 * Raspberry Pis identified by serial number, as their bootloaders ask: a fleet on dynamic
 * DHCP, so the requests come from addresses no config names. Each Pi's FAT boot
 * partition is a native NBD disk (nbdkit); its `<ip>.nbd` declares its serial.
 *
 * - Pi 4: `<serial>/start4.elf` with a tsize probe it aborts (ERROR 0), then the read,
 *   then the rest of its files under the prefix.
 * - Pi 3: `bootcode.bin` at the root (no prefix: served by address, from default/), then
 *   `<serial>/start.elf` and the rest under the prefix.
 * The same sequences over HTTP (HEAD as the size probe). Each file is the disk's, byte for
 * byte; the transfer lines say which identity matched; /status shows the serials and
 * their last match; a serial two configs declare is refused on both protocols.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderNbdConfig } from '../../common/src/nbd-config.ts';
import { buildFilesystemImage } from './fixtures/disk-image.ts';
import { startNbdkit } from './fixtures/nbdkit.ts';
import type { RunningNbdkit } from './fixtures/nbdkit.ts';
import { makeTempDir, seededBytes, sha256 } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { rawRequest, startRtftpWithHttpBoot } from './helpers/http-boot.ts';
import type { RtftpWithHttpBoot } from './helpers/http-boot.ts';
import { downloadFile } from './helpers/tftp-client.ts';
import { decodePacket, encodeError, encodeRrq } from './helpers/tftp-packets.ts';
import { metricValue, rtftpMissingReason } from './helpers/tftp-servers.ts';
import type { LogLine } from './helpers/tftp-servers.ts';
import { UdpEndpoint } from './helpers/udp-endpoint.ts';

interface Pi {
  model: string;
  serial: string;
  /** The address its config is written for (never the one it asks from). */
  configIp: string;
  files: Record<string, Buffer>;
}

const PI4: Pi = {
  model: 'Pi 4',
  serial: '1a2b3c4d',
  configIp: '127.0.0.50',
  files: {
    'start4.elf': seededBytes(2 * 1024 * 1024 + 77, 40),
    'fixup4.dat': seededBytes(5_446, 41),
    'config.txt': Buffer.from('arm_64bit=1\nkernel=kernel8.img\n'),
    'bcm2711-rpi-4-b.dtb': seededBytes(52_593, 42),
    'kernel8.img': seededBytes(3 * 1024 * 1024 + 5, 43),
  },
};
const PI3: Pi = {
  model: 'Pi 3',
  serial: 'cafe0003',
  configIp: '127.0.0.51',
  files: {
    'start.elf': seededBytes(2 * 1024 * 1024 + 1, 50),
    'fixup.dat': seededBytes(7_265, 51),
    'config.txt': Buffer.from('kernel=kernel7.img\n'),
    'kernel7.img': seededBytes(1024 * 1024 + 3, 52),
  },
};
const BOOTCODE = seededBytes(52_456, 60);
/** Dynamic addresses the Pis ask from: no directory, no config. */
const DYNAMIC = { tftp: '127.0.0.77', http: '127.0.0.78' };

describe('Raspberry Pi serial identity', { skip: rtftpMissingReason(), timeout: 180_000 }, () => {
  let dir: TempDir;
  let rtftp: RtftpWithHttpBoot;
  const disks: RunningNbdkit[] = [];

  const configOf = (pi: Pi, url: string) =>
    renderNbdConfig({
      url,
      mounts: [{ partition: 0, mountpoint: '/' }],
      tftpRoot: '/',
      backend: 'native',
      serial: pi.serial,
    });

  before(async () => {
    dir = makeTempDir('rtftp-pi-serial');
    const root = dir.file('root');
    await mkdir(join(root, 'default'), { recursive: true });
    await writeFile(join(root, 'default', 'bootcode.bin'), BOOTCODE);
    // The default/ copy of config.txt: a request without the prefix gets this one.
    await writeFile(join(root, 'default', 'config.txt'), 'the default config\n');
    for (const pi of [PI4, PI3]) {
      const image = dir.file(`${pi.serial}.img`);
      await buildFilesystemImage(image, {
        fs: 'vfat',
        sizeMiB: 16,
        label: 'BOOT',
        files: Object.entries(pi.files).map(([path, content]) => ({ path, content })),
      });
      const nbd = await startNbdkit({ image });
      disks.push(nbd);
      // Upper case in the config: the serial is case-insensitive.
      await writeFile(
        join(root, `${pi.configIp}.nbd`),
        configOf({ ...pi, serial: pi.serial.toUpperCase() }, nbd.url),
      );
    }
    rtftp = await startRtftpWithHttpBoot(root);
    for (const pi of [PI4, PI3])
      await rtftp.server.waitForLog((l) => l.msg === 'Disk connected' && l.client === pi.configIp);
  });

  after(async () => {
    await rtftp?.server.stop();
    await Promise.all(disks.map((d) => d.stop()));
    dir?.remove();
  });

  const transferLine = (protocol: string, client: string, file: string) =>
    rtftp.server.waitForLog(
      (l) =>
        l.msg === 'Transfer completed' &&
        l.protocol === protocol &&
        l.client === client &&
        l.file === file,
    );

  function assertServedFrom(line: LogLine, pi: Pi | null) {
    if (pi === null) {
      assert.equal(line.identity, 'ip');
      assert.equal(line.source, 'default');
      return;
    }
    assert.equal(line.identity, 'serial');
    assert.equal(line.serial, pi.serial);
    assert.equal(line.view, pi.configIp);
    assert.equal(line.source, 'nbd');
  }

  /** A Pi bootloader's size probe: RRQ with tsize (and blksize), OACK, ERROR 0 to end it. */
  async function tftpProbe(name: string, size: number): Promise<void> {
    const socket = await UdpEndpoint.open(DYNAMIC.tftp);
    try {
      await socket.send(
        encodeRrq(name, 'octet', { tsize: '0', blksize: '1024' }),
        rtftp.server.port,
      );
      const reply = await socket.receive(5000);
      assert.ok(reply, `no answer to the probe of ${name}`);
      const oack = decodePacket(reply.msg);
      assert.equal(oack.kind, 'oack');
      assert.equal(oack.kind === 'oack' && oack.options.tsize, String(size));
      await socket.send(encodeError(0, 'Early terminate'), reply.port);
    } finally {
      socket.close();
    }
  }

  async function tftpRead(name: string, expected: Buffer, pi: Pi | null): Promise<void> {
    const r = await downloadFile({
      host: '127.0.0.1',
      port: rtftp.server.port,
      file: name,
      options: { tsize: '0', blksize: '1024' },
      localAddress: DYNAMIC.tftp,
    });
    assert.ok(r.ok, `${name}: ${r.failure ?? JSON.stringify(r.error)}`);
    assert.equal(r.sha256, sha256(expected), name);
    assertServedFrom(await transferLine('tftp', DYNAMIC.tftp, name), pi);
  }

  async function httpRead(name: string, expected: Buffer, pi: Pi | null): Promise<void> {
    const head = await rawRequest(rtftp.httpPort, `/${name}`, {
      method: 'HEAD',
      localAddress: DYNAMIC.http,
    });
    assert.equal(head.status, 200, name);
    assert.equal(head.headers['content-length'], String(expected.length));
    const r = await rawRequest(rtftp.httpPort, `/${name}`, { localAddress: DYNAMIC.http });
    assert.equal(r.status, 200, name);
    assert.equal(sha256(r.body), sha256(expected), name);
    assertServedFrom(await transferLine('http', DYNAMIC.http, name), pi);
  }

  it('Pi 4 over TFTP: <serial>/start4.elf probed and aborted, then read, then the rest under the prefix', async () => {
    const first = `${PI4.serial}/start4.elf`;
    await tftpProbe(first, PI4.files['start4.elf']!.length);
    for (const [file, data] of Object.entries(PI4.files)) {
      if (file !== 'start4.elf') await tftpProbe(`${PI4.serial}/${file}`, data.length);
      await tftpRead(`${PI4.serial}/${file}`, data, PI4);
    }
    const text = await (await fetch(`http://127.0.0.1:${rtftp.metricsPort}/metrics`)).text();
    // Each probe counted as a probe, not a failed transfer.
    assert.equal(metricValue(text, 'rtftp_probes_total'), Object.keys(PI4.files).length);
    assert.equal(metricValue(text, 'rtftp_transfers_total{outcome="failed"}'), undefined);
  });

  it('Pi 3 over TFTP: bootcode.bin at the root by address, then <serial>/start.elf and the rest', async () => {
    await tftpRead('bootcode.bin', BOOTCODE, null);
    for (const [file, data] of Object.entries(PI3.files))
      await tftpRead(`${PI3.serial}/${file}`, data, PI3);
  });

  it('both sequences over HTTP, HEAD as the size probe; the prefix in any case', async () => {
    for (const [file, data] of Object.entries(PI4.files))
      await httpRead(`${PI4.serial}/${file}`, data, PI4);
    await httpRead('bootcode.bin', BOOTCODE, null);
    for (const [file, data] of Object.entries(PI3.files))
      await httpRead(`${PI3.serial}/${file}`, data, PI3);
    await httpRead(`${PI3.serial.toUpperCase()}/config.txt`, PI3.files['config.txt']!, PI3);
  });

  it('without the prefix a request is its address’s, as before: default/’s config.txt', async () => {
    const r = await rawRequest(rtftp.httpPort, '/config.txt', { localAddress: DYNAMIC.http });
    assert.equal(r.body.toString(), 'the default config\n');
    const missing = await rawRequest(rtftp.httpPort, '/deadbeef/start4.elf', {
      localAddress: DYNAMIC.http,
    });
    assert.equal(missing.status, 404, 'an unknown serial is just a directory name');
  });

  it('/status shows each serial, whose view it is, and where it last matched from', async () => {
    const status = (await (await fetch(`http://127.0.0.1:${rtftp.metricsPort}/status`)).json()) as {
      serials: { serial: string; clients: string[]; state: string; lastMatch?: { from: string } }[];
      configs: { clientIp: string; serial?: string }[];
    };
    const pi4 = status.serials.find((s) => s.serial === PI4.serial);
    assert.deepEqual(pi4?.clients, [PI4.configIp]);
    assert.equal(pi4?.state, 'ok');
    assert.ok([DYNAMIC.tftp, DYNAMIC.http].includes(pi4?.lastMatch?.from ?? ''));
    assert.equal(status.configs.find((c) => c.clientIp === PI3.configIp)?.serial, PI3.serial);
  });

  it('a serial two configs declare is refused on both protocols, and served again once it is unique', async () => {
    const twin = join(dir.file('root'), '127.0.0.52.nbd');
    await writeFile(twin, configOf(PI4, disks[0]!.url));
    await rtftp.server.waitForLog(
      (l) => l.msg === 'Serial declared by several configs; requests for it are refused',
    );
    const name = `${PI4.serial}/config.txt`;
    const http = await rawRequest(rtftp.httpPort, `/${name}`, { localAddress: DYNAMIC.http });
    assert.equal(http.status, 403);
    const socket = await UdpEndpoint.open(DYNAMIC.tftp);
    try {
      await socket.send(encodeRrq(name), rtftp.server.port);
      const reply = await socket.receive(3000);
      const p = reply && decodePacket(reply.msg);
      assert.deepEqual([p?.kind, p?.kind === 'error' && p.code], ['error', 2]);
    } finally {
      socket.close();
    }
    await rtftp.server.waitForLog(
      (l) =>
        l.msg === 'Request refused' && l.protocol === 'tftp' && l.reason === 'serial-ambiguous',
    );
    await rm(twin);
    await rtftp.server.waitForLog(
      (l) => l.msg === 'NBD config removed' && l.client === '127.0.0.52',
    );
    const again = await rawRequest(rtftp.httpPort, `/${name}`, { localAddress: DYNAMIC.http });
    assert.equal(again.status, 200);
  });
});
